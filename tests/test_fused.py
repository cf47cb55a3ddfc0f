"""pure.fused against the plain engine: every number `==`, step after step, on several configs and lengths.

The fused engine computes the same float operations in the same order by construction (see its docstring);
these tests are the check of that claim: losses, every tapped intermediate and its gradient, every parameter's
gradient, Adam's moments and the updated weights, and the samples, all compared with `==`.
"""

import pytest

from parity.sources.pure_side import record_pure_step
from pure import fused
from pure.corpus import make_corpus
from pure.engine import Value
from pure.train import Trainer, sample_checkpoint

DOCS = make_corpus()
CONFIGS = [
    dict(),  # the seed's: 1 layer, width 16, 4 heads, block 16
    dict(n_layer=2, n_embd=8, n_head=2, block_size=8, seed=3),
    dict(n_embd=12, n_head=3, block_size=4, seed=7),  # every document longer than the block: truncated
    dict(n_layer=3, n_embd=6, n_head=1, block_size=24, seed=11),  # longer than any document
]


def same(a, b):
    """== on floats, elementwise (numpy arrays or lists), nan never equal."""
    return (a == b).all() if hasattr(a, "all") else a == b


@pytest.mark.parametrize("kw", CONFIGS)
def test_every_number_of_every_step_equals_the_plain_engines(kw):
    plain = Trainer(DOCS, engine="plain", steps=40, **kw)
    fast = Trainer(DOCS, engine="fused", steps=40, **kw)
    lengths = set()
    for step in range(36, 40):  # steps 37-40 include a long document (index 37) and short ones
        lengths.add(len(plain.tokens_at(step)))
        a, b = record_pure_step(plain, step), record_pure_step(fast, step)
        assert a.keys() == b.keys()
        bad = [q for q in a if not same(a[q], b[q])]
        assert not bad, f"step {step + 1}: fused differs from plain in {bad[:5]}"
    assert plain.optimizer.m == fast.optimizer.m and plain.optimizer.v == fast.optimizer.v


def test_a_long_run_stays_equal_and_samples_are_the_same():
    plain = Trainer(DOCS, engine="plain", steps=60, n_embd=8, n_head=2, block_size=8)
    fast = Trainer(DOCS, engine="fused", steps=60, n_embd=8, n_head=2, block_size=8)
    for step in range(60):
        assert plain.train_step(step) == fast.train_step(step), step
    assert plain.flat_values() == fast.flat_values()
    assert plain.sample(10, 0.5) == fast.sample(10, 0.5)


def test_sampling_a_checkpoint_is_the_same():
    from pure.checkpoint import Checkpoint
    from pure.rng import Rng

    t = Trainer(DOCS, steps=3, n_embd=8, n_head=2, block_size=8)
    for step in range(3):
        t.train_step(step)
    ckpt = Checkpoint(config=t.config, chars=t.tokenizer.chars, params=t.export_params(), rng_state=None, meta={})
    assert (sample_checkpoint(ckpt, Rng(5), 8, 0.7, engine="fused")
            == sample_checkpoint(ckpt, Rng(5), 8, 0.7, engine="plain"))


def _same_items(x, y):
    return len(x) == len(y) and all(
        a is b or (a.__class__ is tuple and b.__class__ is tuple and a[0] is b[0] and a[1:] == b[1:])
        for a, b in zip(x, y))


@pytest.mark.parametrize("kw", CONFIGS)
def test_the_recursive_and_the_iterative_walks_give_the_same_order(kw):
    t = Trainer(DOCS, steps=40, **kw)
    for step in range(36, 40):
        loss = t.forward(step)
        assert _same_items(fused._order_recursive(loss), fused._order_iterative(loss)), step
        t.backward(loss)
        t.optimizer.step(step)


def test_a_graph_deeper_than_the_recursion_limit_falls_back_to_the_iterative_walk():
    import inspect
    import sys

    t = Trainer(DOCS, n_layer=2, n_embd=8, n_head=2, block_size=8)
    loss = t.forward(0)
    expected = fused._order_iterative(loss)
    limit = sys.getrecursionlimit()
    try:
        sys.setrecursionlimit(len(inspect.stack()) + 30)  # 30 frames more than this test's: the graph is deeper
        with pytest.raises(RecursionError):
            fused._order_recursive(loss)
        fallback = fused._order(loss)
    finally:
        sys.setrecursionlimit(limit)
    assert _same_items(fallback, expected)


def _terms_reversed(real_backward):
    """Another valid order: every sum walks its terms last to first, as `sum(reversed(...))` would. The same
    gradients mathematically; summed in another order, so different in the last bits."""
    def backward(root):
        sums = {id(item[0]): item[0] for item in fused._order(root) if item.__class__ is tuple}
        for node in sums.values():  # new reversed lists: the pairs stay pairs
            node._terms = node._terms[::-1]
            node._bs = None if node._bs is None else node._bs[::-1]
        real_backward(root)
    return backward


def test_the_order_matters_and_the_comparison_sees_it(monkeypatch):
    """Float addition is not associative: with the pushes in another (mathematically valid) order, gradients
    differ from the plain engine's in the last bits, and the comparison above catches it."""
    plain = Trainer(DOCS, engine="plain")
    fast = Trainer(DOCS, engine="fused")
    monkeypatch.setattr(fused, "backward", _terms_reversed(fused.backward))
    differing = set()
    for step in range(2):
        a, b = record_pure_step(plain, step), record_pure_step(fast, step)
        differing |= {q for q in a if not same(a[q], b[q])}
    assert any(q.startswith("grad:") for q in differing), differing


SOFTMAX_CASES = [
    [0.5, -1.25, 3.0],
    [2.0, 2.0, 2.0],  # ties: every shift is exactly 0
    [1e3, -1e3, 0.0],  # exps that underflow to 0: their gradients are signed zeros
    [-745.0, 0.0, 1e-320],  # a subnormal logit
    [float("nan"), 1.0, 0.0],  # nan: never equal, so compared by repr
]


@pytest.mark.parametrize("logits", SOFTMAX_CASES)
@pytest.mark.parametrize("scale", [None, 2.0])  # None: lm_head's softmax; 2.0: attention's, logits / sqrt(d)
def test_the_folded_softmax_pushes_what_the_plain_one_does(logits, scale):
    """softmax's shift is folded into its exp and each reciprocal into its quotient (see pure.fused): the
    probabilities and every logit's gradient are the plain engine's, signed zeros and nan included, for every
    target and upstream gradient (-0.0 among them)."""
    from pure import model

    def run(sums, backward, target, upstream):
        leaves = [Value(x) for x in logits]
        ls = [sums[0]([v]) for v in leaves]  # each logit a sum node, as a row of W x is
        if scale is not None:
            ls = [v / scale for v in ls]
        probs = model.softmax(ls, sums)
        loss = -probs[target].log() * upstream
        backward(loss)
        return [repr(p.data) for p in probs], [repr(v.grad) for v in leaves]

    for target in range(len(logits)):
        for upstream in (1.0, -2.5, -0.0):
            plain = run(model.PLAIN_SUMS, Value.backward, target, upstream)
            assert run(fused.SUMS, fused.backward, target, upstream) == plain, (target, upstream)


def test_the_plain_backward_refuses_a_fused_graph():
    x, y = Value(1.5), Value(-2.0)
    s = fused.dot([x, y], [y, x])
    loss = s * 2.0
    with pytest.raises(TypeError, match="pure.fused.backward"):
        loss.backward()
    fused.backward(loss)
    assert (x.grad, y.grad) == (2 * (-2.0) * 2, 2 * 1.5 * 2)  # d(2*2xy)/dx = 4y, d/dy = 4x


def test_engine_choice_is_checked():
    with pytest.raises(ValueError, match="unknown engine"):
        Trainer(DOCS, engine="turbo")

    class Mine(Value):
        pass
    with pytest.raises(ValueError, match="fused engine runs pure's own Value only"):
        Trainer(DOCS, engine="fused", value_cls=Mine)
    assert Trainer(DOCS, value_cls=Mine).engine == "plain" and Trainer(DOCS).engine == "fused"
