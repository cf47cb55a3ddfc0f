"""pure.straightline (the floor `make bench` times pure against) against the plain engine: the generated step's
loss, Adam's moments and the weights `==` the plain engine's, step after step, on several configs; and a function
generated for one document trains any later step on a document of the same tokens, whatever the weights."""

import pytest

from pure.corpus import make_corpus
from pure.straightline import StraightLine, compile_step, generate
from pure.train import Trainer

DOCS = make_corpus()
CONFIGS = [
    dict(),  # the seed's
    dict(n_layer=2, n_embd=8, n_head=2, block_size=8, seed=3),
    dict(n_embd=12, n_head=3, block_size=4, seed=7),  # every document longer than the block: truncated
]


@pytest.mark.parametrize("kw", CONFIGS)
def test_the_generated_steps_equal_the_plain_engines(kw):
    plain = Trainer(DOCS, engine="plain", steps=10, **kw)
    line = StraightLine(Trainer(DOCS, engine="plain", steps=10, **kw))
    for step in range(2):
        loss = line.run(step, line.compile(step))
        assert loss == plain.train_step(step), f"step {step + 1}: the loss differs"
        assert line.P == plain.flat_values(), f"step {step + 1}: the weights differ"
        assert line.M == plain.optimizer.m and line.V == plain.optimizer.v, f"step {step + 1}: Adam's moments differ"


def test_a_generated_step_reads_the_weights_it_is_given():
    # generated once, run at two different steps (other weights, other softmax maxima): both equal the plain engine
    small = dict(n_embd=8, n_head=2, block_size=8, steps=10)  # several functions to generate: a small config
    plain = Trainer(DOCS, engine="plain", **small)
    line = StraightLine(Trainer(DOCS, engine="plain", **small))
    tokens = plain.tokens_at(0)
    fn = compile_step(tokens, plain.config)
    for step in range(4):
        if step == 3:  # the same document again, after three updates
            plain.tokens_at = line.trainer.tokens_at = lambda s: tokens
        expected = plain.train_step(step)
        got = line.run(step, fn if step in (0, 3) else line.compile(step))
        assert got == expected and line.P == plain.flat_values(), f"step {step + 1}"


def test_the_source_is_straight_line():
    source, nodes = generate([0, 1, 2, 0], Trainer(DOCS, steps=1).config)
    body = source.splitlines()[1:]
    assert nodes > 1000
    assert not any(line.lstrip().startswith(("for ", "while ", "if ")) for line in body)
