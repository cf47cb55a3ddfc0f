"""Writes a trace given as plain text (tests/test_writers.py: one item a line) through microgpt_trace.py, each
matrix under its name in the order the input gives it, as a numpy port holds it: init as 2-D numpy arrays, params
as flat arrays with cols, grads streamed (begin_matrix, row, value); float32 arrays for a float32 trace."""
import sys

import numpy as np
from microgpt_trace import open_trace

lines = iter(open(sys.argv[1], encoding="utf-8").read().split("\n"))
nxt = lambda: next(lines)  # noqa: E731
integer = lambda: int(nxt())  # noqa: E731
dtype = nxt()
real = np.float32 if dtype == "float32" else np.float64
n_layer, n_embd, n_head, block_size, steps = (integer() for _ in range(5))
chars = nxt()
lr, beta1, beta2, eps = (float(nxt()) for _ in range(4))
trace = open_trace(sys.argv[2])
trace.meta(implementation='named "python"', n_layer=n_layer, n_embd=n_embd, n_head=n_head, block_size=block_size,
           chars=chars, steps=steps, lr=lr, beta1=beta1, beta2=beta2, eps=eps, dtype=dtype)


def matrices(k, key):
    for _ in range(integer()):
        name, rows, cols = nxt(), integer(), integer()
        m = np.array([float(nxt()) for _ in range(rows * cols)], dtype=real).reshape(rows, cols)
        if key == "init":
            trace.matrix(k, key, name, m)
        elif key == "params":
            trace.matrix(k, key, name, m.ravel(), cols=cols)
        else:
            trace.begin_matrix(k, key, name)
            for row in m:
                trace.row()
                for x in row:
                    trace.value(x)
            trace.end()


matrices(0, "init")
for k in range(1, integer() + 1):
    doc, loss = nxt(), real(float(nxt()))
    matrices(k, "grads")
    trace.step(k, doc, loss)
    matrices(k, "params")
trace.close()
