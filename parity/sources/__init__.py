"""What produces the numbers the judge compares: pure's side (pure_side), torch_ref's (replay), a port's trace
(porttrace/), and a user's Value class (user_value: loading it, its protocol); forked runs the judge's own work in a
forked process.

May import: parity.judge, parity.errors, pure, torch_ref, numpy. Never the ops check, the worker, the diagnosis or
a command.
"""
