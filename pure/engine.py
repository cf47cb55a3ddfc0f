"""Scalar reverse-mode autograd, as in micrograd, with the seed program's arithmetic.

Each op builds a new `Value` holding its result, its operands (`_children`)
and its local derivatives d(out)/d(operand) (`_local_grads`), computed once,
at the op, from the forward data. `backward()` multiplies them by the
upstream gradient and accumulates, in the seed's topological order.

Bit-exactness with the seed (a JavaScript program) fixes some choices:
- `a - b` is `a + (-b)`, `-a` is `a * -1`, and `a / b` is `a * b**-1`;
- `**` follows the JavaScript engine's fast paths (`js_pow`);
- gradients accumulate in the order of the seed's recursive depth-first sort.
"""

import contextlib
import gc
import math

_SQUARING_LIMIT = 1000  # JavaScript engines square-and-multiply integer exponents up to this
_TWO_OVER_SQRT_PI = 2 / math.sqrt(math.pi)  # erf's derivative at 0


def js_pow(x, e):
    """`x ** e` as the seed's JavaScript engine computes it.

    e == 0.5 -> sqrt(x); e == -0.5 -> 1/sqrt(x); an integer 0 <= e <= 1000 ->
    repeated squaring (rounding after every multiply, unlike libm's correctly
    rounded pow); anything else -> libm pow. Out-of-domain inputs give nan/inf
    as in JavaScript instead of raising.
    """
    if e == 0.5 or e == -0.5:
        if x < 0 or x != x:
            return math.nan
        if x == math.inf:
            return math.inf if e > 0 else 0.0
        r = math.sqrt(x)
        return r if e > 0 else (1 / r if r else math.inf)
    if 0 <= e <= _SQUARING_LIMIT and e == int(e):
        n, r = int(e), 1.0
        while n:
            if n & 1:
                r *= x
            x *= x
            n >>= 1
        return r
    try:
        return math.pow(x, e)
    except ValueError:  # negative base, fractional exponent
        return math.nan
    except (OverflowError, ZeroDivisionError):
        return math.copysign(math.inf, x) if e == int(e) and int(e) % 2 else math.inf


def _exp(x):
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


def _log(x):
    if x > 0:
        return math.log(x)
    return -math.inf if x == 0 else math.nan


class Value:
    """A scalar in the computation graph: `.data`, `.grad`, operators, `.backward()`."""

    __slots__ = ("data", "grad", "_children", "_local_grads")

    def __init__(self, data, children=(), local_grads=()):
        self.data = data
        self.grad = 0
        self._children = children
        self._local_grads = local_grads

    def __add__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data + other.data, (self, other), (1, 1))  # d(a+b)/da = d(a+b)/db = 1

    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data * other.data, (self, other), (other.data, self.data))  # d(ab)/da = b, d(ab)/db = a

    def __pow__(self, exponent):
        if isinstance(exponent, Value):
            raise TypeError("Value ** Value is not supported; the exponent must be a constant number")
        # d(x^n)/dx = n * x^(n-1)
        return Value(js_pow(self.data, exponent), (self,), (exponent * js_pow(self.data, exponent - 1),))

    def exp(self):
        e = _exp(self.data)
        return Value(e, (self,), (e,))  # d(e^x)/dx = e^x

    def log(self):
        return Value(_log(self.data), (self,), (1 / self.data if self.data else math.inf,))  # d(ln x)/dx = 1/x

    def relu(self):
        x = self.data
        out = x if (x > 0 or x != x) else 0.0
        return Value(out, (self,), (1 if x > 0 else 0,))  # 1 where x > 0, else 0 (also at x == 0)

    # The activations of microgpt's variants (parity's --variant): not used by the seed's model.
    def tanh(self):
        t = math.tanh(self.data)
        return Value(t, (self,), (1 - t * t,))  # d/dx tanh x = 1 - tanh^2 x

    def sigmoid(self):
        x = self.data
        s = 1 / (1 + _exp(-x)) if x == x else x
        return Value(s, (self,), (s * (1 - s),))  # d/dx s(x) = s(x) (1 - s(x))

    def erf(self):
        x = self.data
        return Value(math.erf(x), (self,), (_TWO_OVER_SQRT_PI * _exp(-x * x),))  # d/dx erf x = 2/sqrt(pi) e^(-x^2)

    # Composites: no rules of their own, so their gradients follow from the ops above.
    def __neg__(self):
        return self * -1

    def __sub__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return self + (-other)

    def __truediv__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return self * other**-1

    def __radd__(self, other):
        return Value(other) + self

    def __rmul__(self, other):
        return Value(other) * self

    def __rsub__(self, other):
        return Value(other) - self

    def __rtruediv__(self, other):
        return Value(other) / self

    def topological_order(self):
        """Every node of the graph below self, each after all of its children.

        The seed's order: a depth-first post-order over `_children` (children in
        operand order, each node once). Iterative, so graphs of any depth work.
        """
        topo, visited = [], {id(self)}
        stack = [(self, iter(self._children))]
        while stack:
            node, children = stack[-1]
            for child in children:
                if id(child) not in visited:
                    visited.add(id(child))
                    stack.append((child, iter(child._children)))
                    break
            else:
                stack.pop()
                topo.append(node)
        return topo

    def backward(self):
        """Accumulate d(self)/d(node) into every node's `.grad`, walking the topological order in reverse."""
        self.grad = 1
        for node in reversed(self.topological_order()):
            g = node.grad
            for child, local in zip(node._children, node._local_grads):
                child.grad += local * g  # chain rule; += because a node can feed several others

    def __repr__(self):
        return f"Value(data={self.data}, grad={self.grad})"


@contextlib.contextmanager
def gc_paused():
    """Python's cyclic garbage collector off for the block (one training step, one sample), then a collection
    of the young generation.

    A step builds and drops a graph of ~60,000 nodes. Each is tracked by the collector, whose passes over the
    growing graph took about a third of a step and found nothing: these Values form no cycles, so reference
    counting frees them. Pausing it cannot change any number. Engines whose nodes do form cycles (micrograd's
    `_backward` closures refer to their own output node) are freed by the collection at the end of the block,
    where the step's objects are all still young, so memory stays flat for them too.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
        gc.collect(0)
