"""Re-emits a trace given as plain text (tests/test_writers.py: one item a line) through microgpt_trace.py, its
numbers as numpy arrays (float32 ones for a float32 trace): init and params whole, grads streamed number by number."""
import sys

import numpy as np
from microgpt_trace import open_trace

lines = iter(open(sys.argv[1], encoding="utf-8").read().split("\n"))
nxt = lambda: next(lines)  # noqa: E731
integer = lambda: int(nxt())  # noqa: E731
dtype = nxt()
f32 = dtype == "float32"
real = np.float32 if f32 else np.float64
n_layer, n_embd, n_head, block_size, steps = (integer() for _ in range(5))
chars = nxt()
lr, beta1, beta2, eps = (float(nxt()) for _ in range(4))
trace = open_trace(sys.argv[2])
trace.meta(implementation='driver "python" \\ tab\t nl\n ctl\x01 é ✓', n_layer=n_layer, n_embd=n_embd, n_head=n_head,
           block_size=block_size, chars=chars, steps=steps, lr=lr, beta1=beta1, beta2=beta2, eps=eps, dtype=dtype)


def array(count):
    return np.array([float(nxt()) for _ in range(count)], dtype=real)


trace.init(array(integer()))
for k in range(1, integer() + 1):
    doc, loss = nxt(), real(float(nxt()))
    g = integer()
    if g:  # the streaming form, as a port holding Value objects writes it
        trace.begin(k, "grads")
        for x in array(g):
            trace.value(x)
        trace.end()
    trace.step(k, doc, loss)
    p = integer()
    if p:
        trace.params(k, array(p))
    r = integer()
    if r:
        vocab = integer()
        trace.logits(k, array(r * vocab).astype(np.float64).reshape(r, vocab))
trace.close()
