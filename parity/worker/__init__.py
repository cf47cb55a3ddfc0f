"""Code under test runs in a worker process, never in the judge.

The judge (`process.Worker`) starts a fresh interpreter (`python -I`) in a temporary folder of its own, with standard
input closed, in a session of its own; as root, the worker drops to an unprivileged user of its own (a uid no
other process has) before it imports anything of the user's, so it can neither write the judge's files nor signal
it. The worker (`serve.serve`) sets its own limits (address space, CPU time, file size, processes: `confine`),
imports the user's class, runs the model or the ops with it, and sends back only numbers over a pipe: frames of a
JSON header and float64 arrays, length-prefixed and size-capped (`frames`), which the judge checks against what it
expects before using them (`events`). The judge holds torch, the tolerances, the comparisons, the report and the
exit code.

At a limit (the whole job's wall time, memory, CPU time), or when the worker crashes or exits, with any status,
before its result is complete, the judge kills the worker's whole process group (as root, every process of its
uid too) and reports that engine's divergence, named: "the Value class timed out in backward at step 2 after
20 s", "the Value class exited with status 0 during import". The worker's output is kept apart, shown trimmed as
the class's output, never as the judge's.

May import: parity.ops (the table and the user's side, which a worker runs), parity.sources, parity.judge,
parity.errors, pure. Never the diagnosis or a command.
"""
