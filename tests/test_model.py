"""pure's model and training loop against the seed program's own numbers: init, grads, losses, samples."""

import pytest

from pure import GPTConfig, Rng, Trainer, init_params, param_shapes
from pure.model import flatten


@pytest.mark.parametrize("kwargs,message", [
    ({"n_embd": 10, "n_head": 3}, "divisible"),
    ({"n_layer": 0}, "n_layer"),
    ({"n_embd": -4}, "n_embd"),
    ({"block_size": 1.5}, "block_size"),
    ({"vocab_size": 1}, "vocab_size"),
])
def test_invalid_config_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GPTConfig(**kwargs)


def test_param_shapes_in_seed_order():
    shapes = param_shapes(GPTConfig(n_layer=2))
    assert list(shapes)[:4] == ["wte", "wpe", "lm_head", "layer0.attn_wq"]
    assert list(shapes)[-1] == "layer1.mlp_fc2"
    assert shapes["layer1.mlp_fc1"] == (64, 16)
    assert sum(r * c for r, c in param_shapes(GPTConfig()).values()) == 4192


def test_init_is_the_seeds(golden, names_docs):
    trainer = Trainer(names_docs)
    assert len(trainer.docs) == golden["meta"]["num_docs"]
    assert trainer.config.vocab_size == golden["meta"]["vocab_size"]
    assert [p.data for p in trainer.flat_params] == golden["init"]


ENGINES = ["fused", "plain"]  # both engines are held to the seed's own numbers


@pytest.mark.parametrize("engine", ENGINES)
def test_first_steps_bit_exact(golden, names_docs, engine):
    # Gradients and updated weights of steps 1-3, then the loss of every step up to 15, all with ==.
    trainer = Trainer(names_docs, engine=engine)
    for step in range(15):
        loss = trainer.forward_backward(step)
        ref = golden["steps"][step + 1]
        assert loss.data == ref["loss"], f"step {step + 1}"
        if "grads" in ref:
            assert [p.grad for p in trainer.flat_params] == ref["grads"], f"grads at step {step + 1}"
        trainer.optimizer.step(step)
        if "params" in ref:
            assert [p.data for p in trainer.flat_params] == ref["params"], f"params after step {step + 1}"


def run_fixture(run, docs, engine="fused"):
    c = run["config"]
    trainer = Trainer(docs, seed=c["seed"], steps=c["steps"], n_layer=c["n_layer"], n_embd=c["n_embd"],
                      n_head=c["n_head"], block_size=c["block_size"], engine=engine)
    assert (len(trainer.docs), trainer.config.vocab_size, trainer.num_params) == (
        run["num_docs"], run["vocab_size"], run["num_params"])
    losses = []
    for step in range(c["steps"]):
        if step == 0 and "first_grads" in run:
            loss = trainer.forward_backward(0)
            assert [p.grad for p in trainer.flat_params] == run["first_grads"]
            trainer.optimizer.step(0)
            assert [p.data for p in trainer.flat_params] == run["params_after_1"]
            losses.append(loss.data)
        else:
            losses.append(trainer.train_step(step))
    assert losses == run["losses"]
    assert trainer.sample(c["samples"], c["temperature"]) == run["samples"]


FAST_NAMES_RUNS = ["names_2layer", "names_narrow", "names_3layer", "names_seed_max"]
FAST_TINY_RUNS = ["tiny_default", "tiny_wide"]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", FAST_NAMES_RUNS)
def test_other_configs_bit_exact_on_names(name, seed_runs, names_docs, engine):
    run_fixture(seed_runs[name], names_docs, engine)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", FAST_TINY_RUNS)
def test_other_configs_bit_exact_on_tiny_corpus(name, seed_runs, engine):
    from pure.corpus import make_corpus

    run_fixture(seed_runs[name], make_corpus(), engine)


@pytest.mark.slow
def test_tiny_1000_steps_bit_exact(seed_runs):
    from pure.corpus import make_corpus

    run_fixture(seed_runs["tiny_1000"], make_corpus())


@pytest.mark.slow
def test_names_200_steps_other_seed_bit_exact(seed_runs, names_docs):
    run_fixture(seed_runs["names_default_200"], names_docs)


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
def test_full_default_run_bit_exact(golden, names_docs, engine):
    """The bar: all 1000 losses `==` the seed's, and the same 20 samples."""
    trainer = Trainer(names_docs, engine=engine)
    losses = [trainer.train_step(step) for step in range(1000)]
    mismatches = [i + 1 for i, (a, b) in enumerate(zip(losses, golden["losses"])) if a != b]
    assert not mismatches, f"first mismatching step {mismatches[0]}"
    assert trainer.sample(20, 0.5) == golden["samples"]


def test_init_params_uses_given_value_class():
    class Tagged:
        def __init__(self, data):
            self.data = data

    params = init_params(GPTConfig(vocab_size=5, n_embd=4, n_head=2, block_size=3), Rng(1), Tagged)
    assert all(isinstance(p, Tagged) for p in flatten(params))


def test_block_truncation_and_doc_cycling():
    docs = ["abcdefghijkl", "ab"]
    trainer = Trainer(docs, steps=3, block_size=4, n_embd=4, n_head=1)
    tokens = trainer.tokens_at(0)
    assert tokens[0] == tokens[-1] == trainer.tokenizer.bos
    assert trainer.tokens_at(2) == trainer.tokens_at(0)  # steps cycle through the shuffled docs
    loss = trainer.train_step(0)
    assert loss > 0
