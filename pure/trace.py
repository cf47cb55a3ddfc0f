"""The trace: a JSON-lines record of a run, shared by pure, torch_ref and parity.

    {"meta": {...}}                      first line: config, seed, counts, implementation
    {"step": k, "loss": x, "lr": y}      one per step, k from 1, floats at full precision
    {"sample": i, "text": s}             one per sample, i from 1

The file appears only when the run finishes: lines go to a temporary file
that is renamed at the end (and deleted if the run fails).
"""

import json
import os
import tempfile
from pathlib import Path


class TraceWriter:
    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self._tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name + ".", suffix=".tmp")
        self._f = os.fdopen(fd, "w", encoding="utf-8")

    def write(self, record):
        self._f.write(json.dumps(record) + "\n")  # json writes floats with repr: round-trip exact

    def meta(self, **meta):
        self.write({"meta": meta})

    def step(self, step, loss, lr):
        self.write({"step": step, "loss": loss, "lr": lr})

    def sample(self, index, text):
        self.write({"sample": index, "text": text})

    def commit(self):
        self._f.close()
        os.replace(self._tmp, self.path)

    def abort(self):
        self._f.close()
        if os.path.exists(self._tmp):
            os.unlink(self._tmp)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.commit()
        else:
            self.abort()


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
