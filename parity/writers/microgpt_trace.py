"""microgpt_trace.py: write a port trace (format 1) for `python -m parity check TRACE`. Standard library only.

    from microgpt_trace import open_trace                   # this file beside the port
    trace = open_trace("run.jsonl")                         # "-": stdout
    trace.meta(implementation="my Python port", n_layer=n_layer, n_embd=n_embd, n_head=n_head,
               block_size=block_size, chars="".join(uchars), steps=num_steps, lr=0.01, beta1=0.85, beta2=0.99,
               eps=1e-8, dtype="float64")                   # and, for a variant: weight_decay=0.1, variant={...}
    for name, m in state_dict.items():                      # each matrix by name, in any order
        trace.matrix(0, "init", name, m)                    # rows, a numpy array or a torch tensor
    for step in range(num_steps):
        ...  # forward, loss, loss.backward(); then, before the update zeroes the gradients:
        for name, m in state_dict.items(): trace.matrix(step + 1, "grads", name, grads[name])
        trace.step(step + 1, doc, loss, lr=lr_t)            # lr (optional): the rate the update used
        ...  # the update; then the updated weights:
        for name, m in state_dict.items(): trace.matrix(step + 1, "params", name, m)
    trace.close()                                           # or: with open_trace(path) as trace: ...
A matrix (wte, wpe, lm_head, layer0.attn_wq, ...; the port's own names: meta(..., names={"tok_emb": "wte"})) is
its rows, anything with tolist() (numpy, torch), or a flat sequence row by row with cols=; streamed: begin_matrix(k,
key, name), row() before each row, value(x) per number, end(); key "init" (k 0), "grads" or "params". One flat
list instead: init(values), grads(k, values), params(k, values) (nested lists and arrays are flattened), or begin(k,
"grads"), value(x)..., end(), in the seed's order: wte, wpe, lm_head, then per layer attn_wq, attn_wk, attn_wv,
attn_wo, mlp_fc1, mlp_fc2, each row by row. logits(k, rows). A variant: meta(..., weight_decay=0.1, bos=0,
variant={"activation": "relu2"}); several documents a step: step(k, [doc1, doc2], loss, lr). Numbers are written
exactly (repr), float32 ones as float32 after meta dtype "float32"; NaN and infinities as NaN, Infinity, -Infinity.
"""
import json
import math
import struct
import sys

FACTS = ("weight_decay", "grad_clip", "norm_eps", "bos", "eos")  # meta keys beyond the config and Adam's


def _plain(x):
    return x.tolist() if hasattr(x, "tolist") else x  # numpy arrays and scalars, torch tensors


def _flat(values):
    for x in _plain(values):
        x = _plain(x)
        if isinstance(x, (list, tuple)):
            yield from _flat(x)
        else:
            yield x


class Trace:
    def __init__(self, path="-"):
        self.out = sys.stdout if path == "-" else open(path, "w", encoding="utf-8")
        self.f32, self.buf, self.tail, self.n = False, [], "", 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _number(self, x, f32=None):
        x = float(_plain(x))
        if math.isnan(x):
            return "NaN"
        if abs(x) > (3.4028235677973366e38 if (self.f32 if f32 is None else f32) else 1.7976931348623157e308):
            return "Infinity" if x > 0 else "-Infinity"  # (a float32: what rounds to its infinity)
        if x == 0:
            return "-0.0" if math.copysign(1, x) < 0 else "0.0"  # JSON's -0 reads as +0
        if not (self.f32 if f32 is None else f32):
            return repr(x)
        x = struct.pack("<f", x)  # the float32 nearest x, then the fewest digits that give it back
        for digits in range(1, 10):
            text = "%.*g" % (digits, struct.unpack("<f", x)[0])
            if abs(float(text)) <= 3.4028234663852886e38 and struct.pack("<f", float(text)) == x:
                return text
        return text

    def _write(self, text):
        self.out.write(text)

    def meta(self, *, n_layer, n_embd, n_head, block_size, chars, steps, implementation="", lr=0.01, beta1=0.85,
             beta2=0.99, eps=1e-8, dtype="float64", variant=None, names=None, **facts):
        """Facts beyond the config and Adam's (weight_decay, grad_clip, norm_eps, bos, eos) go in the order given, then
        variant, {key: value}: the deviations from microgpt the port means to have; names: the port's names for its
        matrices, {"tok_emb": "wte", ...}."""
        unknown = [k for k in facts if k not in FACTS]
        if unknown:
            raise TypeError(f"microgpt trace: meta has no {unknown[0]!r}; facts: {', '.join(FACTS)}")
        head = {"format": 1, "implementation": implementation, "n_layer": n_layer, "n_embd": n_embd,
                "n_head": n_head, "block_size": block_size, "chars": chars, "steps": steps}
        fields = [f"{json.dumps(k)}: {json.dumps(_plain(v), ensure_ascii=False)}" for k, v in head.items()]
        fields += [f'"{k}": {self._number(v, False)}' for k, v in (("lr", lr), ("beta1", beta1), ("beta2", beta2),
                                                                     ("eps", eps))]
        fields.append(f'"dtype": {json.dumps(dtype)}')
        fields += [f"{json.dumps(k)}: {self._declared(v)}" for k, v in facts.items() if v is not None]
        if variant:
            fields.append('"variant": {' + ", ".join(f"{json.dumps(k)}: {self._declared(v)}"
                                                      for k, v in variant.items()) + "}")
        if names:
            fields.append(f'"names": {json.dumps(dict(names), ensure_ascii=False)}')
        self._write("{\"meta\": {" + ", ".join(fields) + "}}\n")
        self.f32 = dtype == "float32"

    def _declared(self, v):
        v = _plain(v)
        if isinstance(v, (bool, str, int)):
            return json.dumps(v, ensure_ascii=False)
        return self._number(v, False)

    def begin(self, k, key):
        """Streaming: begin(k, "grads" | "params" | "logits") or begin(0, "init"); value(x) per number (row() before
        each row of logits); end()."""
        head = '{"init": [' if key == "init" else f'{{"step": {int(k)}, {json.dumps(key)}: ['
        self.buf, self.n = [head + ("[" if key == "logits" else "")], 0
        self.tail = "]]}\n" if key == "logits" else "]}\n"

    def begin_matrix(self, k, key, name):
        """One matrix under its name: begin_matrix(0, "init", name) or (k, "grads" | "params", name); row() before
        each row, value(x) per number; end()."""
        head = "{" if key == "init" else f'{{"step": {int(k)}, '
        self.buf, self.n, self.tail = [f"{head}{json.dumps(key)}: {{{json.dumps(name, ensure_ascii=False)}: [["], 0, \
            "]]}}\n"

    def value(self, x):
        self.buf.append((", " if self.n else "") + self._number(x))
        self.n += 1

    def row(self):
        if self.n:
            self.buf.append("], [")
        self.n = 0

    def end(self):
        self._write("".join(self.buf) + self.tail)
        self.buf = []

    def _array(self, k, key, values):
        self.begin(k, key)
        for x in _flat(values):
            self.value(x)
        self.end()

    def init(self, values):
        self._array(0, "init", values)

    def grads(self, k, values):
        self._array(k, "grads", values)

    def params(self, k, values):
        self._array(k, "params", values)

    def _rows(self, rows, cols=None):
        rows = _plain(rows)
        if cols is not None:
            flat = list(_flat(rows))
            rows = [flat[i:i + cols] for i in range(0, len(flat), cols)]
        for r in rows:
            self.row()
            for x in _flat(r):
                self.value(x)
        self.end()

    def matrix(self, k, key, name, rows, cols=None):
        """One matrix under its name, in any order: k 0 with "init", or step k's "grads" / "params"; rows: its rows
        (lists, a 2-D numpy array, a torch tensor), or with cols a flat sequence row by row."""
        self.begin_matrix(k, key, name)
        self._rows(rows, cols)

    def logits(self, k, rows):
        self.begin(k, "logits")
        self._rows(rows)

    def step(self, k, doc, loss, lr=None):
        """doc: the document, or a list of them (a step over several documents: "docs"); lr: the rate the update
        used."""
        docs = (f'"docs": {json.dumps(list(doc), ensure_ascii=False)}' if isinstance(doc, (list, tuple))
                else f'"doc": {json.dumps(doc, ensure_ascii=False)}')
        rate = "" if lr is None else f', "lr": {self._number(lr, False)}'
        self._write(f'{{"step": {int(k)}, {docs}, "loss": {self._number(loss)}{rate}}}\n')
        self.out.flush()

    def close(self):
        self.out.flush()
        if self.out is not sys.stdout:
            self.out.close()


def open_trace(path="-"):
    """A Trace writing to a file, or to standard output for "-"."""
    return Trace(path)
