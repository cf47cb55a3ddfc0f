"""torch_ref against pure: weights, logits, gradients, Adam steps, samples, checkpoints and the CLI.

Every tolerance below is a named constant with the noise it was set from. The gaps are float64
rounding differences: PyTorch sums in its own order (BLAS blocking, fused log-softmax, lerp in
Adam), pure sums left to right, so results agree to a few ulps, not bit for bit.
"""

import subprocess
import sys

import numpy as np
import pytest
import torch

from pure import GPTConfig, Rng, Trainer, gpt, param_shapes
from pure.checkpoint import load_checkpoint
from pure.trace import read_trace
from tests.conftest import ROOT
from torch_ref import (
    MicroGPT,
    TorchTrainer,
    init_from_rng,
    load_pure_params,
    name_map,
    record_intermediates,
    to_pure_params,
)

# float64 logits, whole-sequence and KV-cache paths, vs pure's per-token logits (absolute; logits are O(1)):
# measured max 2.2e-16 / 3.3e-16 here, 3.3e-16 / 4.4e-16 on names (30 docs x the 3 configs); 200x margin.
LOGITS_TOL = 1e-13
# float64 activations at every tap and their gradients vs pure's (absolute): measured max 1.1e-15
# (layer1.mlp_resid) and 1.4e-16; ~90x margin.
TAP_TOL = 1e-13
# One Adam step in float64 vs pure's Adam (the same state going in):
# loss, relative: measured max 2.8e-16 (names, 3 configs, steps 1 and 6); ~300x margin.
STEP_LOSS_RTOL = 1e-13
# parameter gradients, absolute: measured max 3.9e-16; ~130x margin.
STEP_GRAD_TOL = 5e-14
# updated weights, absolute: measured max 3.2e-15, from one gradient of 2.8e-7 that carries a 2.7e-18
# rounding difference: Adam's first step maps g to lr*g/(|g|+eps), whose slope lr*eps/(|g|+eps)^2
# amplifies the noise of gradients near eps by up to lr/(4*eps) = 2.5e5; ~300x margin.
STEP_PARAM_TOL = 1e-12
# Adam moments exp_avg / exp_avg_sq, absolute: measured max 6.9e-17 / 3.9e-18; ~150x / ~250x margin.
STEP_M_TOL = 1e-14
STEP_V_TOL = 1e-15
# Losses of a float64 run vs pure or the seed's golden file (relative): measured max 8.9e-16 over the
# full 1000-step default run, 4.4e-16 over 50 steps of two other configs; 1e-9 is the project's bar.
LOSS_RTOL = 1e-9
# float32 vs float64 (both torch_ref), absolute on logits and weights, relative on losses: measured max
# 8.5e-8 (logits), 1.2e-7 (losses over 20 steps), 8.3e-8 (weights) here; on names 1.9e-7 (logits),
# 1.5e-7 (losses over 50 steps) and 2.3e-7 (weights); ~40x margin.
F32_TOL = 1e-5

# Invented words (no names data): mostly short, three longer than block_size 16 to exercise the cut.
WORDS = """
zubo kelami trosk vennira plom ashtu quibble marzen dofi yelk orvantu presk lumi tandravo gix
sibbet narul embrifosk cade oolu zarnakindelovustrama fep hontiwaq rimmel buzzava kreel tusk ivo
jopple wenderbaxiltrumosk sneeg palloratimbrexvundo kaju mev droon eksi ralt bistavo yume
""".split()

SMALL = dict(seed=3, steps=20, n_layer=1, n_embd=8, n_head=2, block_size=16)
CONFIGS = {
    "default": dict(seed=42),
    "two-layer": dict(seed=7, n_layer=2, n_head=2, block_size=8),
    "one-head": dict(seed=123, n_embd=8, n_head=1),
}


def trainers(kw, dtype=torch.float64, docs=WORDS):
    return Trainer(docs, **kw), TorchTrainer(docs, dtype=dtype, **kw)


def pure_logits(p, tokens):
    """pure's logits at each position of `tokens`, one token at a time: (n, V)."""
    keys, vals = [[] for _ in range(p.config.n_layer)], [[] for _ in range(p.config.n_layer)]
    return np.array([[x.data for x in gpt(tok, pos, keys, vals, p.params, p.config)] for pos, tok in enumerate(tokens)])


def pure_grads(p):
    return {name: [[v.grad for v in row] for row in rows] for name, rows in p.params.items()}


def assert_close(actual, desired, tol, what):
    np.testing.assert_allclose(np.asarray(actual, float), np.asarray(desired, float), rtol=0, atol=tol, err_msg=what)


def run_cli(module, *args):
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def printed_samples(stdout):
    """The names of the `sample  i: name` lines (an empty sample prints as `sample  i: `)."""
    return [line.split(": ", 1)[1] if ": " in line else "" for line in stdout.splitlines()
            if line.startswith("sample ")]


def test_module_layout_and_shapes():
    config = GPTConfig(n_layer=2, n_embd=8, n_head=2, block_size=6, vocab_size=11)
    model = MicroGPT(config).double()
    sd = model.state_dict()
    assert list(sd) == ["wte.weight", "wpe.weight"] + [
        f"layers.{i}.{m}.weight" for i in range(2)
        for m in ("attn.wq", "attn.wk", "attn.wv", "attn.wo", "mlp.fc1", "mlp.fc2")] + ["lm_head.weight"]
    assert sorted(name_map(2).values()) == sorted(sd)  # the mask is a non-persistent buffer
    assert {name_map(2)[n]: s for n, s in param_shapes(config).items()} == {k: tuple(v.shape) for k, v in sd.items()}
    assert all(m.bias is None for m in model.modules() if isinstance(m, torch.nn.Linear))

    idx = torch.tensor([10, 3, 4, 0, 9])
    with record_intermediates(model) as taps:
        logits = model(idx)
    assert logits.shape == (5, 11)
    assert taps["layer1.attn_weights"].shape == (2, 5, 5)
    assert taps["layer0.mlp_pre"].shape == taps["layer0.mlp_hidden"].shape == (5, 32)
    for name in ("embed", "embed_norm", "layer1.q", "layer1.attn_out", "layer1.attn_resid", "layer1.mlp_resid"):
        assert taps[name].shape == (5, 8), name
    weights = taps["layer0.attn_weights"].detach()
    assert torch.all(weights.triu(1) == 0) and torch.allclose(weights.sum(-1), torch.ones(2, 5, dtype=weights.dtype))
    logits.sum().backward()
    assert all(t.grad is not None for t in taps.values()), "every tap keeps its gradient"
    with pytest.raises(ValueError, match="block_size"):
        model(torch.zeros(7, dtype=torch.long))
    cache = model.new_cache()
    assert model.forward_cached(10, 0, cache).shape == (11,)
    with pytest.raises(ValueError, match="does not follow"):
        model.forward_cached(3, 5, cache)


@pytest.mark.parametrize("name", CONFIGS)
def test_initial_weights_are_pures(name):
    p, t = trainers(CONFIGS[name])
    assert t.docs == p.docs and t.tokenizer.chars == p.tokenizer.chars and t.config == p.config
    assert t.export_params() == p.export_params()  # exact: the same draws from the same Rng
    assert t.num_params == p.num_params
    assert t.rng.get_state() == p.rng.get_state()  # sampling will continue the same stream


def test_initial_weights_are_the_seeds(golden, names_docs):
    t = TorchTrainer(names_docs)
    flat = [x for rows in t.export_params().values() for row in rows for x in row]
    assert flat == golden["init"]


@pytest.mark.parametrize("name", CONFIGS)
def test_logits_match_pure_both_paths(name):
    p, t = trainers(CONFIGS[name])
    long_doc = next(s for s in range(len(WORDS)) if len(t.tokens_at(s)) > t.config.block_size)
    for step in (0, 1, long_doc):  # the last is cut to block_size tokens
        tokens = t.tokens_at(step)[:t.config.block_size]
        ref = pure_logits(p, tokens)
        with torch.no_grad():
            full = t.model(torch.tensor(tokens))  # (T, V)
            cache = t.model.new_cache()
            cached = torch.stack([t.model.forward_cached(tok, pos, cache) for pos, tok in enumerate(tokens)])
        assert_close(full, ref, LOGITS_TOL, f"whole-sequence logits, step {step}")
        assert_close(cached, ref, LOGITS_TOL, f"KV-cache logits, step {step}")


@pytest.mark.parametrize("name", ["two-layer", "one-head"])
def test_taps_and_their_gradients_match_pure(name):
    p, t = trainers(CONFIGS[name])
    # A document longer than block_size, so every tap has T = block_size positions.
    step = next(s for s in range(len(WORDS)) if len(p.tokens_at(s)) > p.config.block_size + 1)
    pure_taps = {}
    p.forward_backward(step, tap=lambda name, pos, values: pure_taps.setdefault(name, {}).__setitem__(pos, values))
    with record_intermediates(t.model) as taps:
        loss, _ = t.forward_backward(t.tokens_at(step))
    T = t.config.block_size
    per_layer_attn = {name.split(".")[0] + ".attn_weights" for name in pure_taps if ".head" in name}
    assert set(taps) | {"loss"} == {name for name in pure_taps if ".head" not in name} | per_layer_attn
    assert abs(loss.item() - pure_taps["loss"][None][0].data) <= TAP_TOL
    for name, tensor in taps.items():
        if name.endswith("attn_weights"):
            layer = name.split(".")[0]
            for h in range(t.config.n_head):
                by_pos = pure_taps[f"{layer}.head{h}.attn_weights"]
                values = [[v.data for v in by_pos[i]] + [0.0] * (T - i - 1) for i in range(T)]
                grads = [[v.grad for v in by_pos[i]] for i in range(T)]
                assert_close(tensor[h].detach(), values, TAP_TOL, f"{name} head {h}")
                for i in range(T):
                    assert_close(tensor.grad[h, i, :i + 1], grads[i], TAP_TOL, f"grad of {name} head {h} pos {i}")
            continue
        by_pos = pure_taps[name]
        assert_close(tensor.detach(), [[v.data for v in by_pos[i]] for i in range(T)], TAP_TOL, name)
        assert_close(tensor.grad, [[v.grad for v in by_pos[i]] for i in range(T)], TAP_TOL, f"grad of {name}")


def assert_step_matches(p, t, step):
    p_loss = p.forward_backward(step).data
    t_loss = t.forward_backward(t.tokens_at(step))[0].item()
    assert abs(t_loss - p_loss) <= STEP_LOSS_RTOL * abs(p_loss)
    by_name = t.params_by_name()
    for name, grads in pure_grads(p).items():
        assert_close(by_name[name].grad, grads, STEP_GRAD_TOL, f"grad of {name}")
    assert t.lr_at(step) == p.lr_at(step) == t.optimizer.param_groups[0]["lr"]
    p.optimizer.step(step)
    t.update()
    adam, offset = t.adam_state(), 0
    for name, rows in t.export_params().items():
        assert_close(rows, [[v.data for v in row] for row in p.params[name]], STEP_PARAM_TOL, f"{name} after the step")
        size = len(rows) * len(rows[0])
        assert_close(np.ravel(adam[name][0]), p.optimizer.m[offset:offset + size], STEP_M_TOL, f"exp_avg of {name}")
        assert_close(np.ravel(adam[name][1]), p.optimizer.v[offset:offset + size], STEP_V_TOL, f"exp_avg_sq of {name}")
        offset += size


@pytest.mark.parametrize("name", CONFIGS)
def test_one_adam_step_matches_pure(name):
    p, t = trainers(CONFIGS[name])
    assert_step_matches(p, t, 0)  # torch's Adam creates its state lazily, here


def test_lockstep_resume_from_pure_state():
    # pure runs 3 steps alone; torch_ref takes over its weights, moments and schedule, before and after
    # torch's own first step (lazy state vs existing state), and the next step agrees again.
    for torch_steps_first in (0, 1):
        p, t = trainers(SMALL)
        for step in range(torch_steps_first):
            t.train_step(step)
        for step in range(3):
            p.train_step(step)
        t.load_state_from_pure(p, 3)
        assert t.scheduler.last_epoch == 3 and t.optimizer.param_groups[0]["lr"] == p.lr_at(3)
        assert all(s["step"].item() == 3 for s in t.optimizer.state.values())
        assert t.export_params() == p.export_params()
        assert_step_matches(p, t, 3)
        assert_step_matches(p, t, 4)


def test_lr_schedule_is_the_seeds():
    p, t = trainers(SMALL)
    for step in range(SMALL["steps"]):
        assert t.optimizer.param_groups[0]["lr"] == t.lr_at(step) == p.lr_at(step)
        t.train_step(step)
    with pytest.raises(ValueError, match="schedule is at step"):
        t.train_step(3)  # out of order: the lr would not be step 3's


def test_converters_round_trip_exactly():
    p, t = trainers(CONFIGS["two-layer"])
    floats = {name: [[x * 1.5 - 0.25 for x in row] for row in rows] for name, rows in p.export_params().items()}
    load_pure_params(t.model, floats)
    assert to_pure_params(t.model) == floats
    load_pure_params(t.model, p.params)  # rows of pure.Value
    assert to_pure_params(t.model) == p.export_params()
    fresh = MicroGPT(t.config).double()
    init_from_rng(fresh, Rng(7))
    assert to_pure_params(fresh) != p.export_params()  # Rng(7) without the shuffle: other draws

    missing = {k: v for k, v in floats.items() if k != "lm_head"}
    with pytest.raises(AssertionError, match="missing \\['lm_head'\\]"):
        load_pure_params(t.model, missing)
    wrong = dict(floats, wpe=floats["wpe"][:-1])
    with pytest.raises(AssertionError, match="wpe has shape"):
        load_pure_params(t.model, wrong)


def test_float32_within_its_tolerance_of_float64():
    t64, t32 = TorchTrainer(WORDS, **SMALL), TorchTrainer(WORDS, dtype=torch.float32, **SMALL)
    assert t32.model.wte.weight.dtype == torch.float32
    with torch.no_grad():
        ids = torch.tensor(t64.tokens_at(5))
        assert_close(t32.model(ids).double(), t64.model(ids), F32_TOL, "float32 logits")
    l64 = [t64.train_step(s) for s in range(SMALL["steps"])]
    l32 = [t32.train_step(s) for s in range(SMALL["steps"])]
    assert_close(np.array(l32) / np.array(l64), np.ones(len(l64)), F32_TOL, "float32 losses")
    for name, rows in t64.export_params().items():
        assert_close(t32.export_params()[name], rows, F32_TOL, f"float32 {name}")
    assert len(t32.sample(5, 0.5)) == 5


def test_training_matches_pure_and_samples_agree():
    p, t = trainers(dict(SMALL, n_layer=2, block_size=8))
    pure_losses = [p.train_step(s) for s in range(10)]
    torch_losses = [t.train_step(s) for s in range(10)]
    assert_close(np.array(torch_losses) / np.array(pure_losses), np.ones(len(pure_losses)), LOSS_RTOL, "losses")
    assert t.sample(10, 0.7) == p.sample(10, 0.7)


def test_full_default_run_matches_the_seed(golden, names_docs):
    # The bar: all 1000 losses of the seed's default run within LOSS_RTOL, and the same 20 samples (~2 s).
    t = TorchTrainer(names_docs)
    losses = [t.train_step(s) for s in range(t.steps)]
    assert_close(np.array(losses) / np.array(golden["losses"]), np.ones(t.steps), LOSS_RTOL, "losses vs golden")
    assert t.sample(20, 0.5) == golden["samples"]


@pytest.mark.parametrize("args,message", [
    (["--dtype", "float16"], "invalid choice: 'float16'"),
    (["--device", "nosuchdevice"], "unknown device 'nosuchdevice'"),
    (["--device", "cuda:7"] if not torch.cuda.is_available() else ["--device", "cuda:99"], "is not available"),
])
def test_bad_dtype_or_device_is_a_clear_error(args, message, tmp_path):
    corpus = tmp_path / "words.txt"
    corpus.write_text("\n".join(WORDS))
    r = run_cli("torch_ref", "train", "--data", corpus, "--steps", "1", *args)
    assert r.returncode == 2
    assert message in r.stderr.strip().splitlines()[-1]
    assert "Traceback" not in r.stderr


def test_checkpoints_cross_between_pure_and_torch_ref(tmp_path):
    corpus = tmp_path / "words.txt"
    corpus.write_text("\n".join(WORDS))
    flags = ["--data", corpus, "--steps", "8", "--n-embd", "8", "--n-head", "2", "--samples", "6", "--seed", "5"]
    stdout = {}
    for trainer_cli, sampler_cli in (("pure", "torch_ref"), ("torch_ref", "pure")):
        ckpt, trace = tmp_path / f"{trainer_cli}.json", tmp_path / f"{trainer_cli}.jsonl"
        trained = run_cli(trainer_cli, "train", *flags, "--save", ckpt, "--trace", trace)
        assert trained.returncode == 0, trained.stderr
        stdout[trainer_cli] = trained.stdout
        sampled = run_cli(sampler_cli, "sample", "--load", ckpt, "--samples", "6")
        assert sampled.returncode == 0, sampled.stderr
        assert printed_samples(sampled.stdout) == printed_samples(trained.stdout) == read_trace(trace)[2]
        assert load_checkpoint(ckpt).meta["implementation"] == trainer_cli
    meta, torch_losses, _ = read_trace(tmp_path / "torch_ref.jsonl")
    assert meta["implementation"] == "torch_ref" and meta["dtype"] == "float64" and meta["device"] == "cpu"
    pure_losses = read_trace(tmp_path / "pure.jsonl")[1]
    assert_close(np.array(torch_losses) / np.array(pure_losses), np.ones(8), LOSS_RTOL, "CLI losses")
    # The console output is pure's line for line, up to the loss digits and timings.
    pure_out, torch_out = (stdout[name].splitlines() for name in ("pure", "torch_ref"))
    assert [line.split(" | ")[0] for line in torch_out] == [line.split(" | ")[0] for line in pure_out]

