"""Writes a variant trace given as plain text (tests/test_writers.py: one item a line) through microgpt_trace.py:
declared facts and variant keys, then steps with an lr and over several documents."""
import sys

from microgpt_trace import open_trace

lines = iter(open(sys.argv[1], encoding="utf-8").read().split("\n"))
nxt = lambda: next(lines)  # noqa: E731
integer = lambda: int(nxt())  # noqa: E731
dtype = nxt()
n_layer, n_embd, n_head, block_size, steps = (integer() for _ in range(5))
chars = nxt()
lr, beta1, beta2, eps = (float(nxt()) for _ in range(4))


def value(kind):
    return {"string": nxt, "bool": lambda: nxt() == "true", "int": integer}.get(kind, lambda: float(nxt()))()


declared = []
for _ in range(2):
    declared.append({})
    for _ in range(integer()):
        kind, key = nxt(), nxt()
        declared[-1][key] = value(kind)
facts, variant = declared
trace = open_trace(sys.argv[2])
trace.meta(implementation='variant "python"', n_layer=n_layer, n_embd=n_embd, n_head=n_head, block_size=block_size,
           chars=chars, steps=steps, lr=lr, beta1=beta1, beta2=beta2, eps=eps, dtype=dtype, variant=variant or None,
           **facts)
trace.init([float(nxt()) for _ in range(integer())])
for k in range(1, integer() + 1):
    form = nxt()
    doc = [nxt() for _ in range(integer())] if form == "docs_lr" else nxt()
    loss = float(nxt())
    trace.step(k, doc, loss, float(nxt()) if form != "doc" else None)
trace.close()
