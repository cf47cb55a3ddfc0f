"""The trace: a JSON-lines record of a run, shared by pure, torch_ref and parity.

    {"meta": {...}}                      first line: config, seed, counts, implementation
    {"step": k, "loss": x, "lr": y}      one per step, k from 1, floats at full precision
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

    def step(self, step, loss, lr):
        self.write({"step": step, "loss": loss, "lr": lr})

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
