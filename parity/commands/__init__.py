"""One module per command of `python -m parity`, named after it: run, check, ops, mutants, grade, and bench
(`make bench`); `parity writer` is parity/writers/ itself (the writers, and write_writer that copies one out).
Each holds its command whole: the inputs checked before any work, the work, the outputs written (common: what they
all do alike; diagnose: a divergence's diagnosis, for run and check). parity.api re-exports the functions;
parity.__main__ adds the command line.

May import: everything of parity below it (judge, sources, ops, worker, diagnosis, errors), and each other without
a circle. Never parity.api, parity.testing or parity.__main__.
"""
