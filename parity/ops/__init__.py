"""`parity ops`, the check itself: every rule of a Value class, one operation at a time. cases (the table: each op
written once with the class and once in torch), user_side (the class under test on the table: what a worker runs),
checks (torch's side, finite differences, each op's verdict), report (the table and the JSON).

The command (its inputs, the worker, the outputs) is parity/commands/ops.py.

May import: parity.sources (the user's class), parity.judge, parity.errors, pure, torch. Never the worker, the
diagnosis or a command.
"""
