"""compare_records compares the quantities without a mask all at once (parity.judge.compare._compare_batch); every
Check must be the one compare's general path makes for that quantity alone: the same numbers, verdict, element named,
mismatch count, on records with agreement, failures, exact zeros, ties, a zero atol, non-finite numbers, empty
and 0-d arrays."""

import numpy as np
import pytest

from parity.judge.compare import Tol, causal_mask, compare, compare_records
from parity.judge.quantities import Quantity

SHAPES = [(), (3,), (4, 5), (0,), (2, 3), (7,), (4, 4)]


def records(rng, n, nonfinite):
    quantities, ref, torch, tols = [], {}, {}, {}
    for k in range(n):
        shape = SHAPES[rng.integers(len(SHAPES))]
        causal = len(shape) == 2 and shape[0] == shape[1] and rng.random() < 0.5
        q = Quantity(f"q{k}", "forward", "activation", f"quantity {k}", causal=causal,
                     per_position=bool(rng.random() < 0.5))
        a = rng.normal(size=shape) * 10.0 ** rng.integers(-3, 3)
        a = np.where(rng.random(size=shape) < 0.2, 0.0, a)  # exact zeros
        noise = rng.normal(size=shape) * 10.0 ** rng.integers(-16, -8)
        b = a + np.where(rng.random(size=shape) < 0.3, 0.0, noise)  # ties: several elements share the max
        if nonfinite and np.size(a) and rng.random() < 0.3:
            b = np.array(b, dtype=np.float64)
            b.reshape(-1)[rng.integers(np.size(b))] = [np.nan, np.inf, -np.inf][rng.integers(3)]
        quantities.append(q)
        ref[q.name], torch[q.name] = a, b
        tols[q.name] = Tol(float([0.0, 1e-14, 1e-10][rng.integers(3)]), float([0.0, 1e-12, 1e-8][rng.integers(3)]))
    return quantities, ref, torch, tols


@pytest.mark.parametrize("seed", range(40))
def test_each_check_is_the_one_compare_makes_alone(seed):
    rng = np.random.default_rng(seed)
    quantities, ref, torch, tols = records(rng, 25, nonfinite=seed % 2 == 1)
    got = compare_records("lockstep", 3, quantities, ref, torch, lambda q: tols[q.name])
    for q, check in zip(quantities, got):
        # the general path (a mask, all True where there is none) is the oracle: it judges one element at a time
        shape = np.shape(ref[q.name])
        mask = causal_mask(shape) if q.causal else np.ones(shape, dtype=bool)
        alone = compare("lockstep", 3, q.name, ref[q.name], torch[q.name], tols[q.name], mask, q.per_position)
        assert check.to_json() == alone.to_json(), q.name


def test_the_batch_sees_failures_and_the_first_failing_element():
    q = [Quantity("x", "forward", "activation", "x"), Quantity("y", "backward", "param_grad", "y")]
    ref = {"x": np.zeros(4), "y": np.array([1.0, 2.0, 3.0])}
    torch = {"x": np.array([0.0, 1e-3, 0.0, 2e-3]), "y": np.array([1.0, 2.0, 3.0])}
    x, y = compare_records("free", 1, q, ref, torch, lambda _: Tol(1e-6, 0.0))
    assert not x.ok and x.index == [1] and x.mismatched == 2 and x.max_abs == 2e-3
    assert y.ok and y.max_abs == 0.0
