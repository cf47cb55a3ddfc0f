"""Value classes with exactly one wrong rule each (and one missing a method), for the tests of `parity ops`/`run`.

`Engine` is a correct engine of its own (nodes hold (operand, local derivative) pairs; an iterative
depth-first sort); each subclass below overrides one rule with a plausible mistake:

- WrongMul: d(ab)/da = a and d(ab)/db = b (the two local gradients swapped);
- WrongPow: d(x^n)/dx = n * x^n (the exponent off by one);
- WrongLog: d(ln x)/dx = 1/x^2;
- WrongRelu: gradient 1 at negative inputs too;
- NoAccumulate: backward assigns (`=`) instead of accumulating (`+=`);
- MissingRelu: has no `relu` at all;
- NoBackward: has no `backward` (nothing can be checked with it).
"""

import math


class _Core:
    """Everything but relu: MissingRelu is this class as is."""

    def __init__(self, data, parents=()):
        self.data = data
        self.grad = 0
        self.parents = parents  # ((node, d(self)/d(node)), ...)

    def _node(self, data, parents):
        return type(self)(data, parents)

    def _lift(self, other):
        return other if isinstance(other, _Core) else type(self)(other)

    def __add__(self, other):
        other = self._lift(other)
        return self._node(self.data + other.data, ((self, 1), (other, 1)))

    def __mul__(self, other):
        other = self._lift(other)
        return self._node(self.data * other.data, self._mul_grads(other))

    def _mul_grads(self, other):
        return (self, other.data), (other, self.data)

    def __pow__(self, n):
        return self._node(self.data ** n, ((self, self._pow_grad(n)),))

    def _pow_grad(self, n):
        return n * self.data ** (n - 1)

    def exp(self):
        e = math.exp(self.data)
        return self._node(e, ((self, e),))

    def log(self):
        return self._node(math.log(self.data), ((self, self._log_grad()),))

    def _log_grad(self):
        return 1 / self.data

    def __neg__(self):
        return self * -1

    def __radd__(self, other):
        return self + other

    def __sub__(self, other):
        return self + (-self._lift(other))

    def __rsub__(self, other):
        return self._lift(other) + (-self)

    def __rmul__(self, other):
        return self * other

    def __truediv__(self, other):
        return self * self._lift(other) ** -1

    def __rtruediv__(self, other):
        return self._lift(other) * self ** -1

    def _accumulate(self, node, local, upstream):
        node.grad += local * upstream

    def backward(self):
        order, seen, stack = [], {id(self)}, [(self, 0)]
        while stack:
            node, i = stack.pop()
            if i < len(node.parents):
                stack.append((node, i + 1))
                child = node.parents[i][0]
                if id(child) not in seen:
                    seen.add(id(child))
                    stack.append((child, 0))
            else:
                order.append(node)
        self.grad = 1
        for node in reversed(order):
            for child, local in node.parents:
                self._accumulate(child, local, node.grad)


class Engine(_Core):
    """Correct: every rule right."""

    def relu(self):
        x = self.data
        return self._node(max(x, 0.0), ((self, self._relu_grad()),))

    def _relu_grad(self):
        return 1 if self.data > 0 else 0


class WrongMul(Engine):
    def _mul_grads(self, other):
        return (self, self.data), (other, other.data)  # wrong: swapped


class WrongPow(Engine):
    def _pow_grad(self, n):
        return n * self.data ** n  # wrong: n * x^n instead of n * x^(n-1)


class WrongLog(Engine):
    def _log_grad(self):
        return 1 / self.data ** 2  # wrong: 1/x^2 instead of 1/x


class WrongRelu(Engine):
    def _relu_grad(self):
        return 0 if self.data == 0 else 1  # wrong: 1 for negative inputs too


class NoAccumulate(Engine):
    def _accumulate(self, node, local, upstream):
        node.grad = local * upstream  # wrong: overwrites what other consumers of `node` already pushed


MissingRelu = _Core


class NoBackward(Engine):
    backward = None

WRONG = {"mul": WrongMul, "pow": WrongPow, "log": WrongLog, "relu": WrongRelu, "reuse": NoAccumulate}
