"""Bug traces for the diagnosis's tests and survey: port traces written by pure (plain engine) with one bug of the
catalogue injected, by correct traces with one tracing slip applied, and by bugs outside the catalogue.

    python tests/diagnosis_cases.py        # the survey: every case through parity.check_trace, with the counts
"""

import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from parity.diagnosis.bugs import Bug, catalogue, injected  # noqa: E402
from pure.corpus import make_corpus  # noqa: E402
from pure.engine import Value  # noqa: E402
from pure.model import GPTConfig, param_shapes, split_flat  # noqa: E402
from pure.optim import AdamConfig  # noqa: E402
from pure.train import Trainer  # noqa: E402

CONFIG = dict(n_layer=1, n_embd=8, n_head=2, block_size=8)
STEPS = 3  # every one with gradients and weights
DOCS = make_corpus()
# Bugs that give the same numbers as another on this model or at the step replayed, so the diagnosis names them
# together (a tie): dropping the gradient of either operand of add zeroes every parameter's gradient (as reading
# them after the update does); -log(p) is the only use of log and of neg, so a wrong sign of either is the same
# gradient; m's decay acts from the second step, so at the first, beta2 in m's factor alone or in both of its uses
# is the same update (and v's likewise); step / num_steps in integers is 0, a constant lr; and a document of
# block_size tokens predicts block_size - 1 positions, so averaging over block_size or over its tokens is the same.
EQUIVALENT = [{"add-drops-second", "add-drops-first", "slip-grads-after-zeroing"}, {"neg-grad-sign", "log-grad-sign"},
              {"adam-m-factor-beta2", "adam-m-uses-beta2"}, {"adam-v-factor-beta1", "adam-v-uses-beta1"},
              {"lr-decay-integer-division", "lr-no-decay"}, {"loss-over-block-size", "loss-over-tokens"}]


def write(path, lines):
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def pure_trace(path, bug=None, steps=STEPS, tensors=STEPS, adam=None):
    """A port trace of pure's run (plain engine) with `bug` injected (patches and Adam changes)."""
    adam = AdamConfig(**{**(bug.adam if bug else {}), **(adam or {})})
    config = GPTConfig(**CONFIG)
    patches = bug.patches(config) if bug is not None and bug.patches else []
    with injected(patches):
        t = Trainer(DOCS, steps=steps, engine="plain", adam=adam, **CONFIG)
        c = t.config
        lines = [{"meta": {"n_layer": c.n_layer, "n_embd": c.n_embd, "n_head": c.n_head, "block_size": c.block_size,
                           "chars": "".join(t.tokenizer.chars), "steps": steps, "implementation": "pure + bug",
                           # the trace says the seed's hyper-parameters, whatever the port used
                           "lr": 0.01, "beta1": 0.85, "beta2": 0.99, "eps": 1e-8}},
                 {"init": t.flat_values()}]
        for k in range(steps):
            grads = []
            loss = t.train_step(k, on_grads=lambda tr, grads=grads: grads.extend(tr.flat_values("grad")))
            line = {"step": k + 1, "doc": t.docs[k % len(t.docs)], "loss": loss}
            if k < tensors:
                line.update(grads=grads, params=t.flat_values())
            lines.append(line)
    return write(path, lines)


def _records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _permute(flat, order, config):
    """A flat list in the seed's order written in `order` (a list of names)."""
    parts = split_flat(flat, config)
    return [x for name in order for row in parts[name] for x in row]


def slip_trace(path, slip, correct):
    """A correct trace (pure's) traced with one slip."""
    lines = _records(correct)
    meta = lines[0]["meta"]
    config = GPTConfig(**{k: meta[k] for k in ("n_layer", "n_embd", "n_head", "block_size")},
                       vocab_size=len(meta["chars"]) + 1)
    shapes = param_shapes(config)
    before = lines[1]["init"]
    for line in lines[2:]:
        if slip == "slip-grads-after-zeroing":
            line["grads"] = [0.0] * len(line["grads"])
        elif slip == "slip-weights-before-update":
            before, line["params"] = line["params"], before
    if slip in ("slip-parameter-order", "slip-column-major"):
        def layout(flat):
            if slip == "slip-parameter-order":
                return _permute(flat, sorted(shapes), config)
            parts = split_flat(flat, config)
            return [x for name in shapes for x in np.array(parts[name]).T.reshape(-1).tolist()]
        lines[1]["init"] = layout(lines[1]["init"])
        for line in lines[2:]:
            line["grads"], line["params"] = layout(line["grads"]), layout(line["params"])
    if slip == "slip-float32-judged-as-float64":  # every number a float32, meta saying float64
        def f32(x):
            return float(np.float32(x))
        lines[0]["meta"]["dtype"] = "float64"
        lines[1]["init"] = [f32(x) for x in lines[1]["init"]]
        for line in lines[2:]:
            line["loss"] = f32(line["loss"])
            line["grads"], line["params"] = [f32(x) for x in line["grads"]], [f32(x) for x in line["params"]]
    if slip == "slip-too-few-digits":
        def g(x):
            return float(f"{x:g}")
        lines[1]["init"] = [g(x) for x in lines[1]["init"]]
        for line in lines[2:]:
            line["loss"] = g(line["loss"])
            line["grads"], line["params"] = [g(x) for x in line["grads"]], [g(x) for x in line["params"]]
    return write(path, lines)


def order_trace(path, correct, order):
    """A correct trace with every parameter list written in `order` (a permutation of the seed's names)."""
    lines = _records(correct)
    meta = lines[0]["meta"]
    config = GPTConfig(**{k: meta[k] for k in ("n_layer", "n_embd", "n_head", "block_size")},
                       vocab_size=len(meta["chars"]) + 1)
    lines[1]["init"] = _permute(lines[1]["init"], order, config)
    for line in lines[2:]:
        line["grads"], line["params"] = _permute(line["grads"], order, config), _permute(line["params"], order, config)
    return write(path, lines)


def _exp_grad_double(self):
    e = math.exp(self.data)
    return Value(e, (self,), (2 * e,))


def _leaky_relu(self):
    x = self.data
    return Value(x if x > 0 else 0.01 * x, (self,), (1 if x > 0 else 0.01,))


OUTSIDE = [  # bugs the catalogue does not hold: the diagnosis must name none of them
    Bug("exp-grad-double", "exp's gradient 2e^x", "-", "backward", "rule",
        lambda c: [(Value, "exp", _exp_grad_double)]),
    Bug("leaky-relu", "the MLP uses a leaky ReLU (slope 0.01)", "-", "forward", "model",
        lambda c: [(Value, "relu", _leaky_relu)]),
    Bug("adam-beta1-0.8", "Adam's beta1 is 0.8", "-", "optimizer", "optimizer", adam={"beta1": 0.8}),
    Bug("rmsnorm-eps-1e-3", "rmsnorm's eps is 1e-3", "-", "forward", "model",
        lambda c: [(__import__("pure.model").model, "RMS_EPS", 1e-3)]),
]


def cases():
    """(name, bug or slip id, expected id or None): every bug of the catalogue, every slip, the bugs outside."""
    out = [(b.id, b, b.id) for b in catalogue() if b.kind != "slip"]
    out += [(b.id, b.id, b.id) for b in catalogue() if b.kind == "slip"]
    out += [(b.id, b, None) for b in OUTSIDE]
    out.append(("correct", None, None))
    return out


def build(case, folder):
    """The trace of a case."""
    name, what, _ = case
    if isinstance(what, str):
        return slip_trace(folder / f"{name}.jsonl", what, pure_trace(folder / f"{name}.correct.jsonl"))
    return pure_trace(folder / f"{name}.jsonl", what)


def named(diagnosis):
    """The ids a diagnosis names: its candidates when several reproduce the port equally well, else its id."""
    if not diagnosis or diagnosis.get("id") is None:
        return []
    if diagnosis.get("ambiguous"):
        return [c["id"] for c in diagnosis["candidates"]]
    return [diagnosis["id"]]


def right(expected, diagnosis):
    """Whether the diagnosis names `expected` first, or as one of a tie (bugs with the same numbers on this
    model), or a bug of a known group with the same numbers; for no expected bug, whether it names none."""
    got = named(diagnosis)
    if expected is None or not got:
        return not got and expected is None
    if len(got) > 1:  # a tie: right when it holds the bug and only bugs known to give the same numbers
        return expected in got and any(set(got) <= group for group in EQUIVALENT)
    return expected in got or any({got[0], expected} <= group for group in EQUIVALENT)


def survey(folder):
    import parity

    rows = []
    for case in cases():
        path = build(case, folder)
        t0 = time.perf_counter()
        report = parity.check_trace(path)
        d = report.diagnosis
        rows.append((case[0], case[2], report.verdict, "|".join(named(d)) or None, (d or {}).get("seconds", 0.0),
                     time.perf_counter() - t0, right(case[2], d), d))
    return rows


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        rows = survey(Path(tmp))
    for name, expected, verdict, got, seconds, _total, ok, _d in rows:
        print(f"{name:36s} {verdict:8s} expected {str(expected):36s} named {str(got):36s} {seconds:5.2f}s "
              f"{'ok' if ok else 'WRONG'}")
    injected_bugs = [r for r in rows if r[1] is not None]
    first = sum(r[6] for r in injected_bugs)
    wrong = sum(1 for r in rows if r[3] is not None and not r[6])
    abstained = sum(1 for r in injected_bugs if r[3] is None)
    ties = sum(1 for r in injected_bugs if r[3] and "|" in r[3])
    outside = [r for r in rows if r[1] is None]
    print(f"named right on the first guess: {first}/{len(injected_bugs)} ({ties} as a tie that includes it); wrong "
          f"names: {wrong}; abstentions on catalogue bugs: {abstained}; outside the catalogue or correct, named "
          f"nothing: {sum(r[3] is None for r in outside)}/{len(outside)}; diagnosis time: median "
          f"{sorted(r[4] for r in rows)[len(rows) // 2]:.2f}s, max {max(r[4] for r in rows):.2f}s, total "
          f"{sum(r[4] for r in rows):.1f}s")
