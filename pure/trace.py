"""The trace: a JSON-lines record of a run, shared by pure, torch_ref and parity, in the port-trace format
(format 1) that `parity check` reads from any port (see parity/sources/porttrace/ and the README):

    {"meta": {...}}                      first line: format, config, chars, steps, lr, betas, eps, seed, ...
    {"init": [...]}                      every parameter before training, in the seed's order
    {"step": k, "doc": d, "loss": x, "lr": y}   one per step, k from 1, floats at full precision; the first
                                         --trace-tensors steps add "grads" and "params"
    {"sample": i, "text": s}             one per sample, i from 1

The file appears only when the run finishes: lines go to a temporary file
that is renamed at the end (and deleted if the run fails).
"""

import json

from .outputs import AtomicFile


class TraceWriter(AtomicFile):
    def write(self, record):
        super().write(json.dumps(record) + "\n")  # json writes floats with repr: round-trip exact

    def meta(self, **meta):
        self.write({"meta": meta})

    def init(self, flat):
        self.write({"init": flat})

    def step(self, step, loss, lr, doc=None, grads=None, params=None, docs=None):
        rec = {"step": step, "loss": loss, "lr": lr}
        if doc is not None:
            rec["doc"] = doc
        if docs is not None:  # a variant's several documents a step
            rec["docs"] = docs
        if grads is not None:
            rec["grads"], rec["params"] = grads, params
        self.write(rec)

    def sample(self, index, text):
        self.write({"sample": index, "text": text})


def read_trace(path):
    """(meta, losses, samples) from a trace file."""
    meta, losses, samples = None, [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            if "meta" in rec:
                meta = rec["meta"]
            elif "step" in rec:
                losses.append(rec["loss"])
            elif "sample" in rec:
                samples.append(rec["text"])
    return meta, losses, samples
