"""A scalar autograd with a rule of its own for every operator, written independently of pure.

Unlike pure (and micrograd), `a - b`, `a / b`, `-a` and the reflected forms
are direct nodes with their own local derivatives (d(a/b)/db = -a/b^2, ...),
`**` uses Python's float power (libm pow, not square-and-multiply), and
backward walks the graph in Kahn's order (by counting each node's consumers),
not a depth-first post-order. Nodes keep (parent, local derivative) pairs.
"""

import math
from collections import deque


def _lift(x):
    return x if isinstance(x, Value) else Value(float(x))


class Value:
    __slots__ = ("data", "grad", "edges")

    def __init__(self, data, edges=()):
        self.data = float(data)
        self.grad = 0.0
        self.edges = tuple(edges)  # (input node, d(self)/d(input))

    # binary operators, each with its own derivatives
    def __add__(self, other):
        other = _lift(other)
        return Value(self.data + other.data, ((self, 1.0), (other, 1.0)))

    def __radd__(self, other):
        return Value(float(other) + self.data, ((self, 1.0),))

    def __sub__(self, other):
        other = _lift(other)
        return Value(self.data - other.data, ((self, 1.0), (other, -1.0)))

    def __rsub__(self, other):
        return Value(float(other) - self.data, ((self, -1.0),))

    def __mul__(self, other):
        other = _lift(other)
        return Value(self.data * other.data, ((self, other.data), (other, self.data)))

    def __rmul__(self, other):
        return Value(float(other) * self.data, ((self, float(other)),))

    def __truediv__(self, other):
        other = _lift(other)
        a, b = self.data, other.data
        return Value(a / b, ((self, 1.0 / b), (other, -a / (b * b))))

    def __rtruediv__(self, other):
        a, b = float(other), self.data
        return Value(a / b, ((self, -a / (b * b)),))

    def __neg__(self):
        return Value(-self.data, ((self, -1.0),))

    def __pow__(self, n):
        if isinstance(n, Value):
            raise TypeError("the exponent must be a number")
        x = self.data
        return Value(x ** n, ((self, n * x ** (n - 1)),))

    # functions
    def exp(self):
        e = math.exp(self.data)
        return Value(e, ((self, e),))

    def log(self):
        return Value(math.log(self.data), ((self, 1.0 / self.data),))

    def relu(self):
        x = self.data
        return Value(x if x > 0 else 0.0, ((self, 1.0 if x > 0 else 0.0),))

    def backward(self):
        # Kahn: a node is processed once every node that consumes it has been
        consumers = {id(self): 0}
        nodes = {id(self): self}
        queue = deque([self])
        while queue:
            node = queue.popleft()
            for parent, _ in node.edges:
                key = id(parent)
                if key not in nodes:
                    nodes[key] = parent
                    consumers[key] = 0
                    queue.append(parent)
                consumers[key] += 1
        self.grad = 1.0
        ready = deque([self])
        while ready:
            node = ready.popleft()
            for parent, local in node.edges:
                parent.grad += local * node.grad
                key = id(parent)
                consumers[key] -= 1
                if consumers[key] == 0:
                    ready.append(parent)

    def __repr__(self):
        return f"Value({self.data!r}, grad={self.grad!r})"
