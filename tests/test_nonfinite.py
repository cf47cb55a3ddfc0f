"""A non-finite number never passes: in `compare` (a property test), in every quantity family of `parity run`,
in both modes, on either side, and the first divergence says where it first appeared."""

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from parity.commands.run import run_parity
from parity.judge.compare import Tol, compare
from parity.judge.report import write_json
from parity.sources.pure_side import RunConfig
from pure.corpus import make_corpus
from pure.engine import Value

DOCS = make_corpus()
RUN = RunConfig(steps=1, n_embd=8, n_head=2, block_size=8, samples=0)
NAN, INF = float("nan"), float("inf")

floats = st.floats(allow_nan=True, allow_infinity=True, width=64)
huge = st.sampled_from([1e308, -1e308, 1.7976931348623157e308, 5e-324, 0.0, -0.0, 1.0])
tols = st.sampled_from([Tol(1e-13, 1e-12), Tol(1e-5, 1e-5), Tol(0.0, 0.0), Tol(1e300, 1e300)])


@settings(max_examples=400, deadline=None)
@given(data=st.data(), tol=tols)
def test_a_non_finite_value_never_passes(data, tol):
    shape = data.draw(st.sampled_from([(), (1,), (3,), (2, 3)]))
    elements = st.one_of(floats, huge)
    a = data.draw(arrays(np.float64, shape, elements=elements))
    b = data.draw(arrays(np.float64, shape, elements=elements))
    check = compare("lockstep", 1, "x", a, b, tol)
    finite = np.isfinite(a).all() and np.isfinite(b).all()
    if not finite:
        assert not check.ok
        assert check.nonfinite is not None and check.nonfinite["side"] in ("ref", "torch", "both")
        assert check.max_abs == math.inf and check.ratio == math.inf
        # strict JSON: no NaN or Infinity tokens, one type per key
        text = json.dumps(check.to_json(), allow_nan=False)
        json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    else:
        assert check.nonfinite is None
        with np.errstate(all="ignore"):
            within = np.abs(b - a) <= tol.atol + tol.rtol * np.abs(a)
        assert check.ok == bool(np.all(within))


@settings(max_examples=400, deadline=None)
@given(data=st.data(), tol=tols, per_position=st.booleans())
def test_the_fast_path_for_finite_arrays_says_what_the_general_path_says(data, tol, per_position):
    """compare() without a mask takes a shorter path when both sides are finite; an all-True mask forces the
    general one. Every field of the two checks must be equal (non-finite inputs take the general path in both)."""
    shape = data.draw(st.sampled_from([(), (1,), (3,), (2, 3)]))
    elements = st.one_of(st.floats(allow_nan=False, allow_infinity=False, width=64), huge)
    a = data.draw(arrays(np.float64, shape, elements=elements))
    with np.errstate(over="ignore"):
        near = a + np.float64(1e-16) * np.abs(a)
    b = data.draw(st.one_of(arrays(np.float64, shape, elements=elements), st.just(near), st.just(a.copy())))
    fast = compare("lockstep", 1, "x", a, b, tol, per_position=per_position)
    general = compare("lockstep", 1, "x", a, b, tol, mask=np.ones(shape, dtype=bool), per_position=per_position)
    assert fast == general


@pytest.mark.parametrize("ref,other", [(NAN, 1.0), (INF, 1e20), (1.0, NAN), (-INF, -INF), (INF, INF), (NAN, NAN)])
def test_examples_from_the_issue(ref, other):
    check = compare("lockstep", 1, "loss", [ref], [other], Tol(1e-13, 1e-12))
    assert not check.ok


# ---- every family, both modes: poison torch_ref's side at one place and find it there ------------------------

def _poison_weight(module_attr, value):
    def tamper(trainer):
        with torch.no_grad():
            getattr(trainer.model, module_attr).weight[0, 0] = value
    return tamper


def _poison_loss(trainer):
    loss_of = trainer.loss_of

    def poisoned(tokens):
        loss, logits = loss_of(tokens)
        return loss * NAN, logits
    trainer.loss_of = poisoned


def _poison_logits_grad(trainer):
    loss_of = trainer.loss_of

    def poisoned(tokens):
        loss, logits = loss_of(tokens)
        logits.register_hook(lambda g: g * NAN)
        return loss, logits
    trainer.loss_of = poisoned


def _poison_param_grad(trainer):
    trainer.model.lm_head.weight.register_hook(lambda g: g * INF)


def _poison_after_update(key):
    def tamper(trainer):
        update = trainer.update

        def poisoned():
            update()
            p = trainer.model.wte.weight
            with torch.no_grad():
                (p if key == "param" else trainer.optimizer.state[p][key])[0, 0] = NAN
        trainer.update = poisoned
    return tamper


FAMILIES = [
    ("activation", _poison_weight("wpe", INF), "embed"),
    ("logits", _poison_weight("lm_head", NAN), "logits"),
    ("loss", _poison_loss, "loss"),
    ("act_grad", _poison_logits_grad, "d:logits"),
    ("param_grad", _poison_param_grad, "grad:lm_head"),
    ("adam_m", _poison_after_update("exp_avg"), "adam_m:wte"),
    ("adam_v", _poison_after_update("exp_avg_sq"), "adam_v:wte"),
    ("param", _poison_after_update("param"), "param:wte"),
]


@pytest.mark.parametrize("mode", ["lockstep", "free"])
@pytest.mark.parametrize("family,tamper,quantity", FAMILIES, ids=[f[0] for f in FAMILIES])
def test_every_family_in_both_modes(family, tamper, quantity, mode, tmp_path):
    report = run_parity(DOCS, RUN, modes=(mode,), tamper=tamper)
    fd = report.first_divergence
    assert report.verdict == "diverge"
    assert (fd["step"], fd["mode"], fd["quantity"]) == (1, mode, quantity), report.verdict_line
    assert fd["nonfinite"]["side"] == "torch"
    assert "torch_ref has a non-finite value" in report.verdict_line
    write_json(report, tmp_path / "r.json")  # strict JSON all the way: no NaN or Infinity tokens
    doc = json.loads((tmp_path / "r.json").read_text(), parse_constant=lambda c: pytest.fail(f"constant {c}"))
    assert doc["first_divergence"]["max_abs"] is None and doc["first_divergence"]["nonfinite"]["side"] == "torch"
    assert isinstance(doc["first_divergence"]["tol"], dict)


def nan_exp(self):
    """An engine whose exp returns NaN: pure's side (the reference) goes non-finite first, in the attention."""
    return Value(NAN, (self,), (NAN,))


@pytest.mark.parametrize("modes", [("lockstep",), ("free",), ("lockstep", "free")])
def test_a_nan_engine_never_agrees(modes, monkeypatch):
    monkeypatch.setattr(Value, "exp", nan_exp)
    report = run_parity(DOCS, RUN, modes=modes, value_cls=Value)
    fd = report.first_divergence
    assert report.verdict == "diverge"
    assert fd["step"] == 1 and fd["mode"] == modes[0]
    assert fd["quantity"] == "layer0.head0.attn_weights"  # the first exp of the model is the attention softmax
    assert fd["nonfinite"]["side"] == "ref"
    assert "pure has a non-finite value" in report.verdict_line


def test_lr_1e6_fails_on_the_loss_not_ok():
    report = run_parity(DOCS, RunConfig(steps=3, n_embd=8, n_head=2, block_size=8, samples=0, lr=1e6))
    assert report.verdict == "diverge"
    bad = [c for c in report.checks if not c.ok]
    assert bad and all(c.ok is False for c in bad)
    assert not any(c.ok and (c.nonfinite or not math.isfinite(c.max_abs)) for c in report.checks)
