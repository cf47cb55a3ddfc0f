"""parity mutants: every injected bug is caught and localised, the controls agree, and injection is undone."""

import json
import subprocess
import sys
from dataclasses import replace

import pytest

from parity.commands.mutants import MUTANT_RUN, catalogue, check_mutant
from parity.diagnosis.bugs import injected
from pure.corpus import make_corpus
from pure.engine import Value
from pure.model import GPTConfig
from pure.optim import Adam
from tests.conftest import ROOT

DOCS = make_corpus()


def test_catalogue_has_at_least_15_real_bugs_and_a_control():
    mutants = catalogue()
    assert len([m for m in mutants if not m.harmless]) >= 15
    assert any(m.harmless for m in mutants)
    assert len({m.name for m in mutants}) == len(mutants)


def test_cli_every_bug_caught_and_localised_controls_agree(tmp_path):
    out = tmp_path / "mutants.json"
    r = subprocess.run([sys.executable, "-m", "parity", "mutants", "--json", out], cwd=ROOT, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(out.read_text())
    assert doc["verdict"] == "ok"
    for m in doc["mutants"]:
        assert {"name", "caught", "localized", "first_divergence"} <= set(m)
        if m["harmless"]:
            assert not m["caught"] and m["first_divergence"] is None, m["name"]
        else:
            assert m["caught"] and m["localized"], m["name"]
            assert m["first_divergence"]["step"] >= 1
    assert r.stdout.strip().splitlines()[-1].startswith("mutants: 16/16 caught, 16/16 localised")


def test_injection_is_undone_even_on_error():
    mul, zero_grad = Value.__mul__, Adam.zero_grad
    mutant = next(m for m in catalogue() if m.name == "mul_grads_swapped")
    with pytest.raises(RuntimeError):
        config = GPTConfig(n_layer=MUTANT_RUN.n_layer, n_embd=MUTANT_RUN.n_embd, n_head=MUTANT_RUN.n_head)
        with injected(mutant.bug.patches(config)):
            assert Value.__mul__ is not mul
            raise RuntimeError("boom")
    assert Value.__mul__ is mul and Adam.zero_grad is zero_grad
    b = Value(3.0)
    (Value(2.0) * b).backward()
    assert b.grad == 2.0


def test_a_wrong_expectation_is_reported_as_not_localised():
    mutant = next(m for m in catalogue() if m.name == "attention_unscaled")
    result = check_mutant(replace(mutant, expect=("embed_norm",)), DOCS)
    assert result.caught and not result.localized and not result.ok


def test_a_real_bug_labelled_harmless_fails_the_control():
    mutant = next(m for m in catalogue() if m.name == "relu_grad_at_negative")
    result = check_mutant(replace(mutant, harmless=True, expect=()), DOCS)
    assert result.caught and not result.ok
