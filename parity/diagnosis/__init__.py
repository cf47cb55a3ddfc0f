"""Name the bug, not only the place: the catalogue of known bugs (bugs) and the replay of a diverging step under
each of them (diagnose; the state it starts from: state; one step replayed and fitted: step_replay; the hypotheses:
hypotheses, layouts; a trace with losses only: losses).

May import: parity.sources, parity.judge, parity.errors, pure, torch_ref, numpy. Never the ops check, the worker
or a command.
"""
