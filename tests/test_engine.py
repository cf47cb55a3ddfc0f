"""pure.Value: each op's local derivative, JavaScript's `**`, and backward's order and depth."""

import math
import random

import pytest

from pure import Value, js_pow

# Central differences with h = 1e-6 on these O(1) inputs: truncation ~h^2 * f''' ~ 1e-12 and
# cancellation ~eps/h ~ 2e-10; the worst measured (relative) error over the cases below is 3.0e-10.
FD_STEP = 1e-6
FD_TOL = 1e-7  # ~300x above the measured worst case, far below any wrong rule (errors of O(1))


def grad_of(f, x):
    v = Value(x)
    out = f(v)
    out.backward()
    return out.data, v.grad


def central_difference(f, x, h=FD_STEP):
    return (f(Value(x + h)).data - f(Value(x - h)).data) / (2 * h)


UNARY = {
    "neg": (lambda v: -v, lambda x: -1.0),
    "exp": (lambda v: v.exp(), math.exp),
    "log": (lambda v: v.log(), lambda x: 1 / x),
    "relu": (lambda v: v.relu(), lambda x: 1.0 if x > 0 else 0.0),
    "pow2": (lambda v: v**2, lambda x: 2 * x),
    "pow3": (lambda v: v**3, lambda x: 3 * x * x),
    "pow0.5": (lambda v: v**0.5, lambda x: 0.5 / math.sqrt(x)),
    "pow-0.5": (lambda v: v**-0.5, lambda x: -0.5 * x**-1.5),
    "pow-1": (lambda v: v**-1, lambda x: -1 / x**2),
    "add_const": (lambda v: v + 3.0, lambda x: 1.0),
    "radd": (lambda v: 3.0 + v, lambda x: 1.0),
    "sub_const": (lambda v: v - 3.0, lambda x: 1.0),
    "rsub": (lambda v: 3.0 - v, lambda x: -1.0),
    "mul_const": (lambda v: v * 3.0, lambda x: 3.0),
    "rmul": (lambda v: 3.0 * v, lambda x: 3.0),
    "div_const": (lambda v: v / 4.0, lambda x: 0.25),
    "rdiv": (lambda v: 3.0 / v, lambda x: -3.0 / x**2),
}


@pytest.mark.parametrize("name", sorted(UNARY))
@pytest.mark.parametrize("x", [0.37, 1.9, 2.5])
def test_unary_local_derivative(name, x):
    f, df = UNARY[name]
    _, g = grad_of(f, x)
    assert g == pytest.approx(df(x), rel=1e-12, abs=1e-15)
    if name != "relu" or x != 0:
        assert abs(g - central_difference(f, x)) < FD_TOL * max(1, abs(g))


@pytest.mark.parametrize("op,da,db", [
    ("add", lambda a, b: 1, lambda a, b: 1),
    ("sub", lambda a, b: 1, lambda a, b: -1),
    ("mul", lambda a, b: b, lambda a, b: a),
    ("div", lambda a, b: 1 / b, lambda a, b: -a / b**2),
])
def test_binary_local_derivatives(op, da, db):
    a, b = Value(1.3), Value(-0.7)
    out = {"add": a + b, "sub": a - b, "mul": a * b, "div": a / b}[op]
    out.backward()
    assert a.grad == pytest.approx(da(1.3, -0.7), rel=1e-12)
    assert b.grad == pytest.approx(db(1.3, -0.7), rel=1e-12)


def test_relu_at_zero_and_negative():
    for x, expected in [(-2.0, 0), (0.0, 0), (0.5, 1)]:
        data, g = grad_of(lambda v: v.relu(), x)
        assert data == max(0.0, x) and g == expected


def test_forward_values():
    assert (Value(2.0) ** 3).data == 8.0
    assert Value(0.0).exp().data == 1.0
    assert Value(1.0).log().data == 0.0
    assert Value(0.0).log().data == -math.inf  # JavaScript's Math.log(0), not a Python exception
    assert Value(1000.0).exp().data == math.inf  # JavaScript's Math.exp overflow


def test_js_pow_fast_paths():
    # Integer exponents up to 1000 are repeated squaring: for 0.85**7 that is
    # r=x; x=x*x; r=r*x; x=x*x; r=r*x, which differs from libm's correctly rounded pow.
    x = 0.85
    x2 = x * x
    x4 = x2 * x2
    assert js_pow(x, 7) == (x * x2) * x4
    assert js_pow(x, 7) != math.pow(x, 7)  # otherwise this test would prove nothing
    assert js_pow(2.0, 0.5) == math.sqrt(2.0)
    assert js_pow(3.0, -0.5) == 1 / math.sqrt(3.0)
    assert js_pow(3.0, -1) == math.pow(3.0, -1)
    assert js_pow(5.0, 0) == 1.0
    assert js_pow(0.99, 1001) == math.pow(0.99, 1001)  # above the squaring limit: libm
    assert math.isnan(js_pow(-1.0, 0.5))


def test_backward_on_a_100k_deep_chain():
    x = Value(1.0)
    y = x
    for _ in range(100_000):
        y = y * 1.0 + 0.0
    y.backward()  # no RecursionError
    assert x.grad == 1.0


def test_backward_accumulates_a_reused_node():
    a = Value(3.0)
    total = a
    for _ in range(999):
        total = total + a
    total.backward()
    assert a.grad == 1000.0
    b = Value(2.0)
    c = b * b * b  # d(b^3)/db = 3 b^2
    c.backward()
    assert b.grad == 12.0


def recursive_backward(root):
    """The seed's own algorithm, recursive, as the reference for the iterative one."""
    topo, visited = [], set()

    def build(v):
        if id(v) not in visited:
            visited.add(id(v))
            for child in v._children:
                build(child)
            topo.append(v)

    build(root)
    root.grad = 1
    for v in reversed(topo):
        for child, local in zip(v._children, v._local_grads):
            child.grad += local * v.grad


def random_graph(seed):
    rnd = random.Random(seed)
    leaves = [Value(rnd.uniform(0.5, 2.0)) for _ in range(6)]
    nodes = list(leaves)
    for _ in range(300):
        a, b = rnd.choice(nodes), rnd.choice(nodes)
        op = rnd.randrange(5)
        out = [a + b, a * b, a - b, (a * 0.1).exp(), (a * a + 1.0).log()][op]
        nodes.append(out)
    root = nodes[-1]
    for n in nodes[-40:]:
        root = root + n
    return leaves, root


def test_iterative_backward_matches_recursive_bit_for_bit():
    # Gradient sums are order-dependent in floating point, so bit-exactness with the
    # seed needs the very same topological order, shared nodes included.
    for seed in range(5):
        leaves_a, root_a = random_graph(seed)
        leaves_b, root_b = random_graph(seed)
        root_a.backward()
        recursive_backward(root_b)
        assert [v.grad for v in leaves_a] == [v.grad for v in leaves_b]


def test_pow_rejects_value_exponent():
    with pytest.raises(TypeError):
        Value(2.0) ** Value(2.0)


def test_gc_paused_restores_the_collector_and_frees_cycles():
    import gc
    import weakref

    from pure.engine import gc_paused

    class Node:
        pass

    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
        a, b = Node(), Node()
        a.other, b.other = b, a  # a cycle, as micrograd's closures make
        alive = weakref.ref(a)
        del a, b
        assert alive() is not None  # nothing collects it while paused
    assert gc.isenabled() and alive() is None  # the collection at the end freed it
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()  # a collector that was off stays off
    finally:
        gc.enable()
