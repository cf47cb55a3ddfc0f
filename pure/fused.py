"""The fast engine: one node per sum, bit for bit the plain engine (pure.engine.Value) and so the seed.

In the plain engine a dot product of k terms is 2k+1 nodes (k products, k+1 partial sums), and a step's graph
holds about 58,000 nodes besides its leaves. Here a sum, or a dot product, is one `Sum` node: its forward is
the same left-to-right float loop from 0 that `vsum` performs (never `sum`, `math.fsum` or `math.sumprod`);
softmax is two nodes per logit instead of four (see `_Quotient`), and every other op is the plain engine's
own: about 3,500 nodes a step (both counts: the names data, 20 steps). That alone changes no number. What
could change one is the order in which gradients are added into a node used by several others, since float
addition is not associative; so `backward` walks the graph exactly as the plain engine's depth-first sort
walks the expanded graph: for product term i of a sum it visits a_i, then b_i, then finishes the (virtual)
product node, where it pushes b_i * g into a_i and a_i * g into b_i, the seed's own products in the seed's
own order (see `_order`). tests/test_fused.py checks losses, every gradient, Adam's state and the weights
`==` the plain engine's on several configs.
"""

from .engine import Value, gc_paused, js_pow


class Sum(Value):
    """t_0 + t_1 + ... (terms) or a_0*b_0 + a_1*b_1 + ... (products), computed and differentiated as the
    chain of two-operand nodes the plain engine builds for it would be."""

    __slots__ = ("_terms", "_bs", "_shared", "_reciprocal")

    def __init__(self, data, terms, bs=None, shared=False):
        self.data, self.grad = data, 0  # no _children: see below
        self._terms = terms  # the t_i, or the a_i of the products (lists the model already holds: no copies)
        self._bs = bs  # None, or the b_i of the products
        # True for a row of W x: the a_i are weights (leaves) and bs is the vector x shared by every row. Once
        # one row has been walked, all of x has been visited, so a later row is one run: the walk skips it.
        self._shared = shared
        self._reciprocal = None  # see reciprocal()

    def backward(self):
        backward(self)

    def reciprocal(self):
        """(data, local gradient) of self ** -1, the plain op's own numbers, computed once: softmax divides every
        exp by the same total, and each division keeps a node of its own (see _Quotient)."""
        if self._reciprocal is None:
            r = Value.__pow__(self, -1)
            self._reciprocal = (r.data, r._local_grads[0])
        return self._reciprocal

    # A number on the right: the plain ops wrap it in a Value and build a small constant sub-graph (c ** -1,
    # or c * -1) whose nodes push only into constants, which nothing reads. Here the result has the sum as its
    # only child, with the same data and the same local gradient: two or three nodes fewer. That sub-graph
    # belonged to this node alone, so no other gradient is summed in another order.
    def __truediv__(self, other):
        if isinstance(other, Value):
            return Value.__truediv__(self, other)
        inv = js_pow(other, -1)  # what Value(other) ** -1 holds
        return _Scaled(self.data * inv, (self,), (inv,))  # d(a*b)/da = b

    def __sub__(self, other):
        return _minus(self, other)


# softmax: exps = [(v - max).exp() ...], probs = [e / total ...]. The plain engine builds, per logit v, a shift
# node, an exp node, a reciprocal node (total ** -1) and a product; the classes below build two of the four
# with the same numbers and the same pushes, in the same order:
# - the shift is consumed only by its exp, and v only by its shift, so exp can push into v itself: v's gradient
#   is 0 + e*g either way (the shift's 0 + 1 * (0 + e*g) is the same float);
# - the reciprocal node is consumed only by its product and finishes just before it in the walk, so the product
#   can do its push right after its own (see _Quotient).
# Only pure's own model (pure.model.softmax) is run on these nodes, and tests/test_fused.py checks it `==` the
# plain engine. A shift or an exp used any other way would still be a correct Value, but not the plain order.


def _minus(node, other):
    if isinstance(other, Value):
        return Value.__sub__(node, other)
    return _Shifted(node.data + other * -1, (node,), (1,))  # node + (other * -1), as the plain ops; d/dnode = 1


class _Scaled(Value):
    """s * c for a number c: an attention logit (a dot product / sqrt(head_dim)), which softmax then shifts."""

    __slots__ = ()
    __sub__ = _minus


class _Shifted(Value):
    """v - c for a number c, softmax's max: exponentiated and then dropped, so its exp skips it (see above)."""

    __slots__ = ()

    def exp(self):
        e = Value.exp(self)  # the plain op's numbers: e^(v - c), and d/d(v - c) = e^(v - c) = d/dv
        return _Exp(e.data, self._children, e._local_grads)


class _Exp(Value):
    """e^(v - c): divided by a Sum (softmax's total), it gives a _Quotient."""

    __slots__ = ()

    def __truediv__(self, other):
        if other.__class__ is not Sum:
            return Value.__truediv__(self, other)
        inv, d_inv = other.reciprocal()
        return _Quotient(self.data * inv, (self, other), (inv, d_inv))


class _Quotient(Value):
    """e / total, one node for the plain engine's e * r and r = total ** -1. Its backward pushes inv * g into e,
    then what r would push into the total: d_inv * r's gradient, where r's gradient is 0 + e * g (the product's
    push into r, its only consumer). `backward` does this for every _Quotient."""

    __slots__ = ()


def _chain_error(node):
    raise TypeError("a pure.fused graph was walked by the plain engine's backward; call pure.fused.backward")


# The plain engine reads `_children` to sort the graph: on a Sum that would treat the whole sum as a leaf and
# silently drop its gradients, so reading it raises instead.
Sum._children = property(_chain_error)


def vsum(values):
    """pure.model.vsum as one node: Value(0) + v_0 + v_1 + ... with the same float additions."""
    values = list(values)
    total = 0
    for v in values:
        total = total + v.data
    return Sum(total, values)


def dot(a, b):
    """pure.model.dot as one node: (Value(0) + a_0*b_0) + a_1*b_1 + ... with the same float operations."""
    if len(a) != len(b):  # zip's length, as the plain dot
        n = min(len(a), len(b))
        a, b = a[:n], b[:n]
    total = 0
    for x, y in zip(a, b):
        total = total + x.data * y.data
    return Sum(total, a, b)


def matvec(w, x):
    """pure.model.matvec: one Sum per row of the weights w (leaves), all sharing the vector x."""
    xs = [b.data for b in x]  # read once for every row
    out = []
    for row in w:
        total = 0
        for a, b in zip(row, xs):
            total = total + a.data * b
        out.append(Sum(total, row, x, True))
    return out


SUMS = (vsum, dot, matvec)  # for pure.model's and pure.train's `sums=` arguments


def _order(root):
    """The plain engine's topological order of the expanded graph, as the list `backward` walks in reverse:
    plain op nodes, and runs (sum, i, j) of a sum's terms i..j-1 whose virtual product (or partial-sum) nodes
    finish one after another, with nothing of the rest of the graph in between. Leaves are not listed (they
    push nothing; their gradients are still pushed into by their consumers), nor are the sums themselves (a
    run reads its sum's gradient, which is complete by then).

    The walk is written twice: recursively (`_order_recursive`, about twice as fast, but as deep as the graph)
    and with an explicit stack (`_order_iterative`, any depth). A graph deeper than Python's recursion limit
    allows falls back to the second; tests/test_fused.py checks that both give the same list."""
    try:
        return _order_recursive(root)
    except RecursionError:
        return _order_iterative(root)


def _order_recursive(root):
    topo, visited, walked = [], {root}, set()
    append, seen = topo.append, visited.add

    def visit(node):  # node is marked visited; walk what it has not, then finish it
        if node.__class__ is not Sum:
            for child in node._children:
                if child not in visited:
                    seen(child)
                    if child.__class__ is Sum:
                        if child._shared and id(child._bs) in walked:  # a row of W x whose x is walked: one run
                            append((child, 0, len(child._terms)))
                        else:
                            visit(child)
                    elif child._children:
                        visit(child)
            append(node)
            return
        terms, bs = node._terms, node._bs
        n, start = len(terms), 0  # start: first term of the run that has not been listed yet
        # The loops below differ only in what term i walks. They are spelled out, not shared, because this is
        # the walk's hot loop, where a call or an inner loop per term would slow every step.
        if bs is None or node._shared:
            # t_0 + t_1 + ...: the partial sum with t_i finishes after t_i is walked. A row of W x: the weights
            # are leaves, so term i walks x_i alone, and once one row has walked x, all of x is visited.
            operands = terms if bs is None else (() if id(bs) in walked else bs)
            for i in range(len(operands)):
                x = operands[i]
                if x not in visited:
                    seen(x)
                    if x.__class__ is Sum or x._children:
                        if start < i:  # terms start..i-1 finished before x's subtree is walked
                            append((node, start, i))
                        visit(x)
                        start = i  # term i finishes after it
            if bs is not None:
                walked.add(id(bs))
        else:  # a_i * b_i: walk a_i, then b_i, then the product finishes
            for i in range(n):
                x = terms[i]
                if x not in visited:
                    seen(x)
                    if x.__class__ is Sum or x._children:
                        if start < i:
                            append((node, start, i))
                        if x.__class__ is Sum and x._shared and id(x._bs) in walked:
                            append((x, 0, len(x._terms)))
                        else:
                            visit(x)
                        start = i
                x = bs[i]
                if x not in visited:
                    seen(x)
                    if x.__class__ is Sum or x._children:
                        if start < i:
                            append((node, start, i))
                        if x.__class__ is Sum and x._shared and id(x._bs) in walked:
                            append((x, 0, len(x._terms)))
                        else:
                            visit(x)
                        start = i
        if start < n:
            append((node, start, n))

    try:
        visit(root)
    finally:
        # visit refers to itself through its closure: a cycle that would keep `visited`, and so the whole graph,
        # alive until the cyclic collector runs (about 1 ms a step). Emptying the cell frees them by refcount.
        visit = None
    return topo


def _order_iterative(root):
    """`_order_recursive` with an explicit stack. A frame is [node, next operand or term, phase, first term of
    the run]: for a product term, phase 0 is before a, 1 before b, 2 when both are walked."""
    topo, visited = [], {root}
    append, seen = topo.append, visited.add
    walked = set()  # ids of shared vectors (see Sum._shared) all of whose entries have been visited
    stack = [[root, 0, 0, 0]]
    while stack:
        frame = stack[-1]
        node, i, phase, start = frame
        descend = None
        if node.__class__ is not Sum:
            children = node._children
            n = len(children)
            while i < n:
                child = children[i]
                i += 1
                if child not in visited:
                    seen(child)
                    if child.__class__ is Sum or child._children:
                        descend = child
                        break
            if descend is None:
                stack.pop()
                append(node)
            else:
                frame[1] = i
                stack.append([descend, 0, 0, 0])
            continue
        terms, bs = node._terms, node._bs
        n = len(terms)
        shared = node._shared
        if shared and i == 0 and phase == 0 and id(bs) in walked:
            i = n  # weights are leaves and every x_i is visited: the terms finish one after another
        elif bs is not None:
            while i < n:
                if phase == 0 and shared:  # a weight: a leaf, nothing to walk
                    phase = 1
                elif phase == 0:
                    phase, x = 1, terms[i]
                    if x not in visited:
                        seen(x)
                        if x.__class__ is Sum or x._children:
                            descend = x
                            break
                if phase == 1:
                    phase, x = 2, bs[i]
                    if x not in visited:
                        seen(x)
                        if x.__class__ is Sum or x._children:
                            descend = x
                            break
                i, phase = i + 1, 0  # a_i * b_i finishes
        else:
            while i < n:
                if phase == 0:
                    phase, x = 1, terms[i]
                    if x not in visited:
                        seen(x)
                        if x.__class__ is Sum or x._children:
                            descend = x
                            break
                i, phase = i + 1, 0  # the partial sum with t_i finishes
        if descend is not None:
            if start < i:  # terms start..i-1 finished before this operand's subtree is walked
                append((node, start, i))
            frame[1:] = [i, phase, i]  # term i finishes after it: the next run starts there
            stack.append([descend, 0, 0, 0])
            continue
        if start < n:
            append((node, start, n))
        if shared:
            walked.add(id(bs))
        stack.pop()
    return topo


def backward(root):
    """Accumulate d(root)/d(node) into every node's .grad, in the plain engine's order, pushing the same products."""
    root.grad = 1
    for item in reversed(_order(root)):
        if item.__class__ is tuple:
            node, start, end = item
            # what every term's virtual node receives: 0 + 1 * (the sum's gradient), complete by now, since the
            # sum's consumers all come earlier in this reversed order
            g = 0 + node.grad
            terms, bs = node._terms, node._bs
            if end - start == 1:  # a run of one term (about half of them): the loops below, without a range
                if bs is not None:
                    a, b = terms[start], bs[start]
                    a.grad += b.data * g
                    b.grad += a.data * g
                else:
                    terms[start].grad += g
            elif bs is not None:
                for i in range(end - 1, start - 1, -1):
                    a, b = terms[i], bs[i]
                    a.grad += b.data * g  # d(a*b)/da = b
                    b.grad += a.data * g  # d(a*b)/db = a
            else:
                for i in range(end - 1, start - 1, -1):
                    terms[i].grad += g  # d(t_0 + t_1 + ...)/dt_i = 1
        else:
            g = item.grad
            children = item._children
            if len(children) == 2:  # most ops: the same pushes as the loop below, in operand order
                a, b = children
                la, lb = item._local_grads
                a.grad += la * g
                if item.__class__ is _Quotient:  # e / total: the reciprocal node's push, folded in
                    b.grad += lb * (0 + a.data * g)
                else:
                    b.grad += lb * g
            elif len(children) == 1:
                children[0].grad += item._local_grads[0] * g
            else:
                for child, local in zip(children, item._local_grads):
                    child.grad += local * g


__all__ = ["SUMS", "Sum", "backward", "dot", "gc_paused", "vsum"]
