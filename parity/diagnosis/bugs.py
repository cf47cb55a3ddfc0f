"""The catalogue of known bugs: the mistakes ports and Value classes make, each with an id, a sentence a user
understands, the fix, the phase where it first shows, and how to make pure commit it.

`parity mutants` injects some of them into pure to prove the harness catches and localises them; the diagnosis
(parity.diagnosis) replays a diverging step under each of them and names the one that reproduces the port's own
numbers. A bug is injected by patches (object, attribute, replacement) applied for the length of one replay and
restored after (`injected`); no file is edited. Tracing slips (the port right, its trace wrong) have no patches:
parity.diagnosis tests them on the numbers themselves.
"""

import contextlib
import math
import types
from dataclasses import dataclass, field
from typing import Callable, Optional

import pure.model
import pure.optim
import pure.train
from pure.engine import Value, js_pow
from pure.model import PLAIN_SUMS
from pure.optim import Adam

PHASES = ("forward", "backward", "optimizer")


@dataclass(frozen=True)
class Bug:
    id: str  # short and stable: "relu-grad"
    summary: str  # what is wrong, in words a user understands
    fix: str  # what is right
    phase: str  # where it first shows: forward, backward or optimizer
    kind: str  # "rule" (of the autograd), "model", "optimizer" or "slip" (the port right, its trace wrong)
    patches: Optional[Callable] = None  # (config) -> [(object, attribute, replacement)] that make pure commit it
    adam: dict = field(default_factory=dict)  # AdamConfig fields the bug changes (betas, eps)
    # A deviation that ports make on purpose: the declaration (pure.variants' keys) that makes it a variant
    variant: dict = field(default_factory=dict)


@contextlib.contextmanager
def injected(patches):
    """Apply (object, attribute, replacement) patches for the block, then restore them, whatever happens."""
    saved = []
    try:
        for obj, attr, new in patches:
            saved.append((obj, attr, getattr(obj, attr)))
            setattr(obj, attr, new)
        yield
    finally:
        for obj, attr, old in reversed(saved):
            setattr(obj, attr, old)


def _wrap(v):
    return v if isinstance(v, Value) else Value(v)


# ---- rules of the autograd: each a Value method with one local derivative wrong ----------------------------------

def _mul_swapped(self, other):
    other = _wrap(other)
    return Value(self.data * other.data, (self, other), (self.data, other.data))  # should be (b, a)


def _pow_rule(local):
    """x ** n with the local derivative local(x, n) (the right one: n * x^(n-1))."""
    def power(self, n):
        return Value(js_pow(self.data, n), (self,), (local(self.data, n),))
    return power


def _log_rule(local):
    def log(self):
        return Value(math.log(self.data), (self,), (local(self.data),))
    return log


def _exp_rule(local):
    def exp(self):
        e = math.exp(self.data)
        return Value(e, (self,), (local(self.data, e),))
    return exp


def _relu_grad_one(self):
    return Value(max(0.0, self.data), (self,), (1,))  # should be 0 for x <= 0


def _add_rule(la, lb):
    def add(self, other):
        other = _wrap(other)
        return Value(self.data + other.data, (self, other), (la, lb))
    return add


def _neg_keeps_sign(self):
    return Value(-self.data, (self,), (1,))  # should be -1


def _div_rule(local_b):
    """a / b as one node, d/da = 1/b right, d/db = local_b(a, b) (the right one: -a/b^2)."""
    def div(self, other):
        other = _wrap(other)
        a, b = self.data, other.data
        return Value(a / b, (self, other), (1 / b, local_b(a, b)))
    return div


def _backward_assigns(self):
    self.grad = 1
    for node in reversed(self.topological_order()):
        for child, local in zip(node._children, node._local_grads):
            child.grad = local * node.grad  # should be +=: a reused node keeps only its last contribution


def _breadth_first_order(self):
    """Each node once, in breadth-first order from the root, reversed: a shared node can be processed
    before every node that uses it has passed its gradient down."""
    order, seen, frontier = [], {id(self)}, [self]
    while frontier:
        order.extend(frontier)
        nxt = []
        for node in frontier:
            for child in node._children:
                if id(child) not in seen:
                    seen.add(id(child))
                    nxt.append(child)
        frontier = nxt
    return order[::-1]


def _reverse_operand_order(self):
    """Another valid topological order (children visited last operand first): the same gradients, summed
    in another order, so they differ from pure's only by rounding (a harmless control)."""
    topo, visited = [], {id(self)}
    stack = [(self, iter(self._children[::-1]))]
    while stack:
        node, children = stack[-1]
        for child in children:
            if id(child) not in visited:
                visited.add(id(child))
                stack.append((child, iter(child._children[::-1])))
                break
        else:
            stack.pop()
            topo.append(node)
    return topo


def _relu_squared(self):
    r = max(0.0, self.data)
    return Value(r * r, (self,), (2 * r,))  # relu(x)^2: GPT-2-era squared ReLU, not the seed's ReLU


def _gelu_erf(self):
    """GELU, the exact form x * Phi(x), with its derivative Phi(x) + x phi(x)."""
    x = self.data
    return Value(0.5 * x * (1 + math.erf(x / math.sqrt(2))), (self,),
                 (0.5 * (1 + math.erf(x / math.sqrt(2))) + x * math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi),))


def _silu(self):
    """SiLU x * sigmoid(x), with its derivative s(x) (1 + x (1 - s(x)))."""
    x = self.data
    s = 1 / (1 + math.exp(-x)) if x > -700 else 0.0
    return Value(x * s, (self,), (s * (1 + x * (1 - s)),))


def _gelu(self):
    """GELU, tanh approximation (GPT-2's), with its derivative."""
    x = self.data
    k = math.sqrt(2 / math.pi)
    t = math.tanh(k * (x + 0.044715 * x ** 3))
    return Value(0.5 * x * (1 + t), (self,), (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * k * (1 + 3 * 0.044715 * x * x),))


# ---- the model: a function of pure.model or pure.train replaced (each takes `sums=`, so both engines run it) ------

def _rmsnorm_eps_outside_sqrt(x, sums=PLAIN_SUMS, eps=None):
    ms = sums[1](x, x) / len(x)
    scale = (ms ** 0.5 + (pure.model.RMS_EPS if eps is None else eps)) ** -1  # should be (ms + eps) ** -0.5
    return [xi * scale for xi in x]


def _rmsnorm_with(scale_of):
    """rmsnorm whose scale is scale_of(sum of squares, n, eps) (the seed's: (sum / n + eps) ** -0.5)."""
    def rmsnorm(x, sums=PLAIN_SUMS, eps=None):
        scale = scale_of(sums[1](x, x), len(x), pure.model.RMS_EPS if eps is None else eps)
        return [xi * scale for xi in x]
    return rmsnorm


def _layernorm(x, sums=PLAIN_SUMS, eps=None):
    mean = sums[0](x) / len(x)
    centred = [xi - mean for xi in x]
    var = sums[1](centred, centred) / len(x)
    scale = (var + (pure.model.RMS_EPS if eps is None else eps)) ** -0.5
    return [c * scale for c in centred]


def _softmax_max_backprops(logits, sums=PLAIN_SUMS):
    # The max is subtracted as a Value, so gradient flows through it. Since softmax is shift-invariant,
    # the gradients through the shift sum to zero: the same function, only rounded differently (a control).
    m = max(logits, key=lambda v: v.data)
    exps = [(v - m).exp() for v in logits]
    total = sums[0](exps)
    return [e / total for e in exps]


def _per_token(config, count, replace):
    """A replacement for a function the forward calls `count` times per token, in a fixed order: call i of each
    token goes to replace(i, original, *args) (the original otherwise), which tells which norm or residual it is."""
    def patch(original):
        calls = [0]

        def fn(*args, **kwargs):
            i = calls[0] % count(config)
            calls[0] += 1
            return replace(i, original, *args, **kwargs)
        return fn
    return patch


def _skip_norm(which):
    """rmsnorm skipped at one place: "embed" (after the embeddings), "attn" or "mlp" (before each block)."""
    def patches(config):
        def replace(i, original, x, sums=PLAIN_SUMS, eps=None):
            place = "embed" if i == 0 else ("attn" if i % 2 == 1 else "mlp")
            return list(x) if place == which else original(x, sums, eps)
        patch = _per_token(config, lambda c: 1 + 2 * c.n_layer, replace)
        return [(pure.model, "rmsnorm", patch(pure.model.rmsnorm))]
    return patches


def _drop_residual(which):
    """The residual connection around the attention ("attn") or the MLP ("mlp") missing."""
    def patches(config):
        def replace(i, original, x, skip):
            return list(x) if ("attn" if i % 2 == 0 else "mlp") == which else original(x, skip)
        patch = _per_token(config, lambda c: 2 * c.n_layer, replace)
        return [(pure.model, "residual", patch(pure.model.residual))]
    return patches


def _attention_scale(scale_of):
    """The attention logits divided by scale_of(head_dim, n_embd) instead of sqrt(head_dim)."""
    def patches(config):
        return [(pure.model, "math", types.SimpleNamespace(sqrt=lambda d: scale_of(d, config.n_embd)))]
    return patches


def _gpt_wrapper(change):
    """pure.train.gpt called through change(original, args): the token, the position, the cache or the weights."""
    def patches(config):
        original = pure.train.gpt

        def gpt(token_id, pos_id, kv_keys, kv_vals, params, config, tap=None, sums=PLAIN_SUMS):
            return change(original, token_id, pos_id, kv_keys, kv_vals, params, config, tap, sums)
        return [(pure.train, "gpt", gpt)]
    return patches


def _cache_not_extended(gpt, t, pos, keys, vals, params, config, tap, sums):
    return gpt(t, pos, [[] for _ in keys], [[] for _ in vals], params, config, tap, sums)  # attends to itself only


def _position_zero(gpt, t, pos, keys, vals, params, config, tap, sums):
    return gpt(t, 0, keys, vals, params, config, tap, sums)


def _position_next(gpt, t, pos, keys, vals, params, config, tap, sums):
    return gpt(t, (pos + 1) % config.block_size, keys, vals, params, config, tap, sums)


def _no_position(gpt, t, pos, keys, vals, params, config, tap, sums):
    zeros = [Value(0.0) for _ in range(config.n_embd)]
    return gpt(t, pos, keys, vals, dict(params, wpe=[zeros] * config.block_size), config, tap, sums)


def _loss_scaled(factor):
    """The document's loss times factor(n, config, tokens): summed instead of averaged, averaged over block_size or
    over the document's tokens, not negated."""
    def patches(config):
        original = pure.train.doc_loss

        def doc_loss(tokens, params, config, tap=None, sums=PLAIN_SUMS):
            n = min(config.block_size, len(tokens) - 1)
            return original(tokens, params, config, tap, sums) * factor(n, config, tokens)
        return [(pure.train, "doc_loss", doc_loss)]
    return patches


def _constant(name, value):
    return lambda config: [(pure.model, name, value)]


# ---- the optimizer: pure's Adam with one expression changed --------------------------------------------------------

_lr_at = Adam.lr_at


def _js_div(a, b):
    """a / b as JavaScript and C compute it: a zero divisor gives inf or nan, not an exception."""
    if b:
        return a / b
    if a != a or a == 0:
        return math.nan
    return math.copysign(math.inf, a) * math.copysign(1.0, b)


def _seed_betas(beta1, beta2):
    """The seed's four uses of the betas: (m's decay, m's factor on g, v's decay, v's factor on g^2, the beta of m's
    bias correction, the beta of v's)."""
    return beta1, 1 - beta1, beta2, 1 - beta2, beta1, beta2


def _adam_step(eps_inside=False, t_from_zero=False, weight_decay=0.0, betas=_seed_betas):
    """Adam.step with eps inside the square root, the bias correction's t counted from 0, a decoupled weight decay
    (AdamW's), or a beta in the wrong place (`betas`: as _seed_betas): the seed's expressions otherwise."""
    def step(self, step):
        c = self.config
        lr_t = self.lr_at(step)
        t = step if t_from_zero else step + 1
        m_decay, m_factor, v_decay, v_factor, b1, b2 = betas(c.beta1, c.beta2)
        bias1, bias2 = 1 - js_pow(b1, t), 1 - js_pow(b2, t)
        m, v, eps, sqrt = self.m, self.v, c.eps, math.sqrt
        if bias1 and bias2 and not eps_inside and not weight_decay:  # the common case, without the guards
            for i, p in enumerate(self.params):
                g = p.grad
                m[i] = m_i = m_decay * m[i] + m_factor * g
                v[i] = v_i = v_decay * v[i] + v_factor * g * g
                p.data -= lr_t * (m_i / bias1 / (sqrt(v_i / bias2) + eps))
            self.zero_grad()
            return
        for i, p in enumerate(self.params):
            g = p.grad
            m[i] = m_decay * m[i] + m_factor * g
            v[i] = v_decay * v[i] + v_factor * g * g
            m_hat, v_hat = _js_div(m[i], bias1), _js_div(v[i], bias2)
            denom = sqrt(v_hat + eps) if eps_inside else sqrt(v_hat) + eps
            p.data -= lr_t * _js_div(m_hat, denom) + lr_t * weight_decay * p.data
        self.zero_grad()
    return step


def _betas(**uses):
    """Adam with some of the betas' uses changed: uses maps m_decay, m_factor, v_decay, v_factor, bias1, bias2 to a
    function of (beta1, beta2)."""
    order = ("m_decay", "m_factor", "v_decay", "v_factor", "bias1", "bias2")

    def betas(beta1, beta2):
        seed = dict(zip(order, _seed_betas(beta1, beta2)))
        return tuple(uses[k](beta1, beta2) if k in uses else seed[k] for k in order)
    return _adam(step=_adam_step(betas=betas))


def _adam(**changes):
    return lambda config: [(Adam, name, fn) for name, fn in changes.items()]


# The linear decay, with the division said: in C, Java, Rust and Go `step / num_steps` of two integers is 0, which
# is itself a known bug (lr-decay-integer-division)
LR_FIX = ("lr_t = lr * (1.0 - (double)step / num_steps), step counted from 0, num_steps the run's length "
          "(floating-point division)")


def catalogue():
    """Every known bug, in the order they are tried and listed: the autograd's rules, the model, the optimizer,
    then the tracing slips. Each fix is written for any language: pow(), sqrt() and exp() for the powers and roots
    (`^` is XOR in C, Java, Rust and Go), and floating-point division said where integers would truncate."""
    rule, model, opt, slip = "rule", "model", "optimizer", "slip"
    V = Value
    rms = "rmsnorm: scale = 1 / sqrt(sum(x*x) / n + 1e-5), n = len(x); y = x * scale"
    lr_fix = LR_FIX
    m_fix, v_fix = "m = beta1 * m + (1 - beta1) * g", "v = beta2 * v + (1 - beta2) * g * g"
    bc_fix = "m_hat = m / (1 - pow(beta1, t)), v_hat = v / (1 - pow(beta2, t)), t = step + 1"
    pow_fix = "pow: d pow(x, n)/dx = n * pow(x, n-1)"
    loss_fix = "loss = -sum(log(p[target])) / n (floating-point), n = min(block_size, len(tokens) - 1) predictions"
    return [
        # -- the autograd's rules (backward)
        Bug("mul-swapped", "mul's local gradients swapped: d(a*b)/da = a", "mul: d(a*b)/da = b, d(a*b)/db = a",
            "backward", rule, lambda c: [(V, "__mul__", _mul_swapped)]),
        Bug("add-drops-second", "add passes no gradient to its second operand", "add: d(a+b)/da = d(a+b)/db = 1",
            "backward", rule, lambda c: [(V, "__add__", _add_rule(1, 0))]),
        Bug("add-drops-first", "add passes no gradient to its first operand", "add: d(a+b)/da = d(a+b)/db = 1",
            "backward", rule, lambda c: [(V, "__add__", _add_rule(0, 1))]),
        Bug("neg-grad-sign", "neg's gradient +1 instead of -1", "neg: d(-x)/dx = -1",
            "backward", rule, lambda c: [(V, "__neg__", _neg_keeps_sign)]),
        Bug("pow-off-by-one", "pow's gradient n*pow(x, n) instead of n*pow(x, n-1)", pow_fix,
            "backward", rule, lambda c: [(V, "__pow__", _pow_rule(lambda x, n: n * js_pow(x, n)))]),
        Bug("pow-missing-n", "pow's gradient pow(x, n-1), without the factor n", pow_fix,
            "backward", rule, lambda c: [(V, "__pow__", _pow_rule(lambda x, n: js_pow(x, n - 1)))]),
        Bug("pow-grad-sign", "pow's gradient -n*pow(x, n-1): the wrong sign", pow_fix,
            "backward", rule, lambda c: [(V, "__pow__", _pow_rule(lambda x, n: -n * js_pow(x, n - 1)))]),
        Bug("div-denominator-sign", "division's gradient for the divisor +a/(b*b) instead of -a/(b*b)",
            "div: d(a/b)/da = 1/b, d(a/b)/db = -a/(b*b)", "backward", rule,
            lambda c: [(V, "__truediv__", _div_rule(lambda a, b: a / b / b))]),
        Bug("div-denominator-dropped", "division passes no gradient to its divisor (treated as a constant)",
            "div: d(a/b)/da = 1/b, d(a/b)/db = -a/(b*b)", "backward", rule,
            lambda c: [(V, "__truediv__", _div_rule(lambda a, b: 0.0))]),
        Bug("exp-grad-one", "exp's gradient 1 instead of exp(x)", "exp: d exp(x)/dx = exp(x)",
            "backward", rule, lambda c: [(V, "exp", _exp_rule(lambda x, e: 1))]),
        Bug("exp-grad-input", "exp's gradient x instead of exp(x)", "exp: d exp(x)/dx = exp(x)",
            "backward", rule, lambda c: [(V, "exp", _exp_rule(lambda x, e: x))]),
        Bug("log-grad-inverse-square", "log's gradient 1/(x*x) instead of 1/x", "log: d log(x)/dx = 1/x",
            "backward", rule, lambda c: [(V, "log", _log_rule(lambda x: 1 / x ** 2))]),
        Bug("log-grad-sign", "log's gradient -1/x instead of 1/x", "log: d log(x)/dx = 1/x",
            "backward", rule, lambda c: [(V, "log", _log_rule(lambda x: -1 / x))]),
        Bug("relu-grad", "relu's backward passes gradients at negative inputs",
            "relu: d relu(x)/dx = 1 if x > 0 else 0", "backward", rule, lambda c: [(V, "relu", _relu_grad_one)]),
        Bug("grad-assigned", "backward assigns child.grad = ... instead of accumulating into it (+=): a node used "
            "twice keeps only its last contribution",
            "accumulate with += in every backward: child.grad += local * node.grad",
            "backward", rule, lambda c: [(V, "backward", _backward_assigns)]),
        Bug("topological-order", "backward visits shared nodes before all their users (not a topological order)",
            "backward: visit the graph in reverse topological order (depth-first post-order, reversed)",
            "backward", rule, lambda c: [(V, "topological_order", _breadth_first_order)]),
        # -- the model (forward)
        Bug("attention-unscaled", "attention logits not divided by sqrt(head_dim)",
            "attention: attn_logits = dot(q, k) / sqrt(head_dim)", "forward", model,
            _attention_scale(lambda d, c: 1.0)),
        Bug("attention-scaled-by-n-embd", "attention logits divided by sqrt(n_embd) instead of sqrt(head_dim)",
            "attention: attn_logits = dot(q, k) / sqrt(head_dim)", "forward", model,
            _attention_scale(lambda d, c: math.sqrt(c))),
        Bug("attention-scaled-by-head-dim", "attention logits divided by head_dim instead of its square root",
            "attention: attn_logits = dot(q, k) / sqrt(head_dim)", "forward", model,
            _attention_scale(lambda d, c: float(d))),
        Bug("rmsnorm-eps-outside-sqrt", "rmsnorm computes 1/(sqrt(ms) + eps) instead of 1/sqrt(ms + eps)",
            rms + " (eps inside the sqrt)", "forward", model,
            lambda c: [(pure.model, "rmsnorm", _rmsnorm_eps_outside_sqrt)]),
        Bug("rmsnorm-eps-before-mean", "rmsnorm adds eps to the sum of squares before dividing by n: "
            "sqrt((sum(x*x) + eps) / n)", rms + " (eps added after the mean)", "forward", model,
            lambda c: [(pure.model, "rmsnorm", _rmsnorm_with(lambda ss, n, eps: ((ss + eps) / n) ** -0.5))]),
        Bug("rmsnorm-sum-not-mean", "rmsnorm divides by the root of the sum of squares, not of their mean",
            rms + " (the mean: divided by n)", "forward", model,
            lambda c: [(pure.model, "rmsnorm", _rmsnorm_with(lambda ss, n, eps: (ss + eps) ** -0.5))]),
        Bug("rmsnorm-not-inverted", "rmsnorm multiplies by the root mean square instead of dividing by it",
            rms + " (divide by the root mean square)", "forward", model,
            lambda c: [(pure.model, "rmsnorm", _rmsnorm_with(lambda ss, n, eps: (ss / n + eps) ** 0.5))]),
        Bug("rmsnorm-eps-1e-6", "rmsnorm's eps is 1e-6, not the seed's 1e-5", rms,
            "forward", model, _constant("RMS_EPS", 1e-6), variant={"norm_eps": 1e-6}),
        Bug("rmsnorm-eps-1e-8", "rmsnorm's eps is 1e-8, not the seed's 1e-5", rms,
            "forward", model, _constant("RMS_EPS", 1e-8), variant={"norm_eps": 1e-8}),
        Bug("rmsnorm-no-eps", "rmsnorm has no eps", rms,
            "forward", model, _constant("RMS_EPS", 0.0), variant={"norm_eps": 0.0}),
        Bug("layernorm", "layernorm (the mean subtracted) where the seed has rmsnorm",
            rms + ", no mean subtracted", "forward", model, lambda c: [(pure.model, "rmsnorm", _layernorm)]),
        Bug("rmsnorm-missing-embed", "the rmsnorm right after the embeddings is missing (GPT-2 has none there)",
            "x = rmsnorm(tok_emb + pos_emb) before the first block", "forward", model, _skip_norm("embed")),
        Bug("rmsnorm-missing-attn", "the rmsnorm before attention is missing",
            "x = rmsnorm(x) before the attention of every block", "forward", model, _skip_norm("attn")),
        Bug("rmsnorm-missing-mlp", "the rmsnorm before the MLP is missing",
            "x = rmsnorm(x) before the MLP of every block", "forward", model, _skip_norm("mlp")),
        Bug("residual-dropped-attn", "the residual connection around attention is missing",
            "x = x_residual + attn(rmsnorm(x)): keep the residual connection", "forward", model,
            _drop_residual("attn")),
        Bug("residual-dropped-mlp", "the residual connection around the MLP is missing",
            "x = x_residual + mlp(rmsnorm(x)): keep the residual connection", "forward", model,
            _drop_residual("mlp")),
        Bug("kv-cache-not-extended", "the KV cache is not extended: each token attends only to itself",
            "append this position's key and value to the KV cache before attending", "forward", model,
            _gpt_wrapper(_cache_not_extended)),
        Bug("position-zero", "every token gets position 0's embedding",
            "x = wte[token] + wpe[position]: the token's own position embedding", "forward", model,
            _gpt_wrapper(_position_zero)),
        Bug("position-off-by-one", "each token gets the next position's embedding",
            "x = wte[token] + wpe[position]: the token's own position embedding, position from 0", "forward", model,
            _gpt_wrapper(_position_next)),
        Bug("no-position-embedding", "the position embedding is not added",
            "x = wte[token] + wpe[position]: add the position embedding", "forward", model,
            _gpt_wrapper(_no_position)),
        Bug("relu-squared", "the MLP uses relu(x)^2 (an older microgpt) instead of relu(x)",
            "the MLP: x = relu(x), not squared", "forward", model, lambda c: [(V, "relu", _relu_squared)],
            variant={"activation": "relu2"}),
        Bug("gelu", "the MLP uses GELU (GPT-2's tanh approximation) instead of ReLU",
            "the MLP: x = relu(x), not GELU", "forward", model, lambda c: [(V, "relu", _gelu)],
            variant={"activation": "gelu_tanh"}),
        Bug("gelu-erf", "the MLP uses GELU (the exact form, with erf) instead of ReLU",
            "the MLP: x = relu(x), not GELU", "forward", model, lambda c: [(V, "relu", _gelu_erf)],
            variant={"activation": "gelu"}),
        Bug("silu", "the MLP uses SiLU (x * sigmoid(x)) instead of ReLU", "the MLP: x = relu(x), not SiLU",
            "forward", model, lambda c: [(V, "relu", _silu)], variant={"activation": "silu"}),
        Bug("loss-summed", "the loss is summed over the positions, not averaged", loss_fix + " (averaged, not summed)",
            "forward", model, _loss_scaled(lambda n, c, tokens: n)),
        Bug("loss-over-block-size", "the loss is averaged over block_size instead of the positions predicted",
            loss_fix + " (averaged over the positions predicted)", "forward", model,
            _loss_scaled(lambda n, c, tokens: n / c.block_size)),
        Bug("loss-over-tokens", "the loss is averaged over the document's tokens (BOS included) instead of the "
            "positions predicted", loss_fix + " (averaged over the positions predicted, one fewer than the tokens)",
            "forward", model, _loss_scaled(lambda n, c, tokens: n / len(tokens))),
        Bug("loss-not-negated", "the loss is the mean log-probability, not its negative (training climbs it)",
            loss_fix + " (negated)", "forward", model, _loss_scaled(lambda n, c, tokens: -1.0)),
        # -- the optimizer
        Bug("adam-no-bias-correction", "Adam without bias correction of m and v", bc_fix, "optimizer", opt,
            _adam(bias_corrections=lambda self, step: (1.0, 1.0))),
        Bug("adam-bias-correction-m-only", "Adam's bias correction applied to m only",
            bc_fix + ": v's too", "optimizer", opt,
            _adam(bias_corrections=lambda self, step: (1 - js_pow(self.config.beta1, step + 1), 1.0))),
        Bug("adam-bias-correction-v-only", "Adam's bias correction applied to v only",
            bc_fix + ": m's too", "optimizer", opt,
            _adam(bias_corrections=lambda self, step: (1.0, 1 - js_pow(self.config.beta2, step + 1)))),
        Bug("adam-bias-correction-betas-swapped", "Adam's bias corrections swapped: m_hat divides by "
            "1 - pow(beta2, t), v_hat by 1 - pow(beta1, t)", bc_fix, "optimizer", opt,
            _betas(bias1=lambda b1, b2: b2, bias2=lambda b1, b2: b1)),
        Bug("adam-step-from-zero", "Adam's step counter starts at 0, so the first bias correction divides by 0",
            bc_fix + ": the first update's t is 1", "optimizer", opt, _adam(step=_adam_step(t_from_zero=True))),
        Bug("adam-m-decay-beta2", "Adam's m decays with beta2: m = beta2 * m + (1 - beta1) * g", m_fix,
            "optimizer", opt, _betas(m_decay=lambda b1, b2: b2)),
        Bug("adam-m-factor-beta2", "Adam's m takes (1 - beta2) of the gradient: m = beta1 * m + (1 - beta2) * g", m_fix,
            "optimizer", opt, _betas(m_factor=lambda b1, b2: 1 - b2)),
        Bug("adam-m-uses-beta2", "Adam's m uses beta2: m = beta2 * m + (1 - beta2) * g", m_fix,
            "optimizer", opt, _betas(m_decay=lambda b1, b2: b2, m_factor=lambda b1, b2: 1 - b2)),
        Bug("adam-m-factors-swapped", "Adam's m = (1 - beta1) * m + beta1 * g: the decay and the gradient's factor "
            "swapped", m_fix, "optimizer", opt,
            _betas(m_decay=lambda b1, b2: 1 - b1, m_factor=lambda b1, b2: b1)),
        Bug("adam-m-factor-missing", "Adam's m = beta1 * m + g: the gradient's factor (1 - beta1) missing", m_fix,
            "optimizer", opt, _betas(m_factor=lambda b1, b2: 1.0)),
        Bug("adam-v-decay-beta1", "Adam's v decays with beta1: v = beta1 * v + (1 - beta2) * g * g", v_fix,
            "optimizer", opt, _betas(v_decay=lambda b1, b2: b1)),
        Bug("adam-v-factor-beta1", "Adam's v takes (1 - beta1) of g * g: v = beta2 * v + (1 - beta1) * g * g", v_fix,
            "optimizer", opt, _betas(v_factor=lambda b1, b2: 1 - b1)),
        Bug("adam-v-uses-beta1", "Adam's v uses beta1: v = beta1 * v + (1 - beta1) * g * g", v_fix,
            "optimizer", opt, _betas(v_decay=lambda b1, b2: b1, v_factor=lambda b1, b2: 1 - b1)),
        Bug("adam-v-factors-swapped", "Adam's v = (1 - beta2) * v + beta2 * g * g: the decay and the factor of g * g "
            "swapped", v_fix, "optimizer", opt,
            _betas(v_decay=lambda b1, b2: 1 - b2, v_factor=lambda b1, b2: b2)),
        Bug("adam-v-factor-missing", "Adam's v = beta2 * v + g * g: the factor (1 - beta2) missing", v_fix,
            "optimizer", opt, _betas(v_factor=lambda b1, b2: 1.0)),
        Bug("adam-eps-inside-sqrt", "Adam adds eps inside the square root: sqrt(v_hat + eps)",
            "Adam: p -= lr_t * m_hat / (sqrt(v_hat) + eps), eps outside the sqrt", "optimizer", opt,
            _adam(step=_adam_step(eps_inside=True))),
        Bug("adam-eps-1e-6", "Adam's eps is 1e-6, not the seed's 1e-8", "Adam: eps = 1e-8", "optimizer", opt,
            adam={"eps": 1e-6}, variant={"eps": 1e-6}),
        Bug("adam-betas-swapped", "Adam's betas swapped: beta1 0.99, beta2 0.85", "Adam: beta1 = 0.85, beta2 = 0.99",
            "optimizer", opt, adam={"beta1": 0.99, "beta2": 0.85}),
        Bug("adam-betas-torch-default", "Adam's betas are torch's defaults (0.9, 0.999), not the seed's (0.85, 0.99)",
            "Adam: beta1 = 0.85, beta2 = 0.99", "optimizer", opt, adam={"beta1": 0.9, "beta2": 0.999},
            variant={"beta1": 0.9, "beta2": 0.999}),
        Bug("adam-betas-0.9-0.95", "Adam's betas are (0.9, 0.95), not the seed's (0.85, 0.99)",
            "Adam: beta1 = 0.85, beta2 = 0.99", "optimizer", opt, adam={"beta1": 0.9, "beta2": 0.95},
            variant={"beta1": 0.9, "beta2": 0.95}),
        Bug("adam-weight-decay", "a decoupled weight decay of 0.01 (AdamW's default) that the seed does not have",
            "Adam: no weight decay", "optimizer", opt, adam={"weight_decay": 0.01}, variant={"weight_decay": 0.01}),
        Bug("lr-decay-off-by-one", "the linear lr decay uses the next step's learning rate (step counted from 1)",
            lr_fix, "optimizer", opt, _adam(lr_at=lambda self, step: _lr_at(self, step + 1))),
        Bug("lr-decay-over-steps-minus-one", "the linear lr decay divides by num_steps - 1: the last step's lr is 0",
            lr_fix, "optimizer", opt,
            _adam(lr_at=lambda self, step: self.config.lr * (1 - step / (self.total_steps - 1)))),
        Bug("lr-decay-integer-division", "the lr decay divides integers: step / num_steps is 0, so the lr never decays",
            lr_fix, "optimizer", opt,
            _adam(lr_at=lambda self, step: self.config.lr * (1 - step // self.total_steps))),
        Bug("lr-decay-integer-ratio", "the lr decay divides integers: (num_steps - step) / num_steps is 0 after "
            "step 0, so the lr is 0 from the second step", lr_fix, "optimizer", opt,
            _adam(lr_at=lambda self, step: self.config.lr * ((self.total_steps - step) // self.total_steps))),
        Bug("lr-no-decay", "the learning rate does not decay", lr_fix,
            "optimizer", opt, adam={"lr_schedule": "constant"}, variant={"lr_schedule": "constant"}),
        Bug("lr-cosine", "a cosine lr decay (an older microgpt) instead of the seed's linear one", lr_fix,
            "optimizer", opt, adam={"lr_schedule": "cosine"}, variant={"lr_schedule": "cosine"}),
        Bug("grads-not-zeroed", "gradients are not zeroed after the update, so they pile up across steps",
            "set p.grad = 0 for every parameter after the update: gradients zeroed every step", "backward", opt,
            _adam(zero_grad=lambda self: None)),
        # -- tracing slips: the port may be right, its trace wrong (tested on the numbers: parity.diagnosis)
        Bug("slip-grads-after-zeroing", "the trace's gradients were read after the update zeroed them",
            "write the gradients right after backward(), before the update", "backward", slip),
        Bug("slip-weights-before-update", "the trace's weights were read before the update",
            "write the weights after the Adam update", "optimizer", slip),
        Bug("slip-parameter-order", "the trace lists the parameters in another order than the seed's",
            "write the parameters in the seed's order: wte, wpe, lm_head, then per layer attn_wq, attn_wk, attn_wv, "
            "attn_wo, mlp_fc1, mlp_fc2", "forward", slip),
        Bug("slip-column-major", "the trace writes each matrix column by column",
            "write each matrix row by row (row r is output r of the layer)", "forward", slip),
        Bug("slip-too-few-digits", "the trace's numbers are printed with too few digits",
            "print numbers at full precision (%.17g for double, %.9g for float)", "forward", slip),
        Bug("slip-float32-judged-as-float64", "a float32 port judged with float64's tolerances",
            'say "dtype": "float32" in meta (or check with --dtype float32)', "forward", slip),
    ]


CONTROLS = [
    Bug("control-softmax-max-backprops", "softmax's max subtraction also back-propagates (harmless)", "-",
        "forward", "control", lambda c: [(module, "softmax", _softmax_max_backprops)
                                         for module in (pure.model, pure.train)]),
    Bug("control-other-topological-order", "backward in another valid topological order (harmless)", "-",
        "backward", "control", lambda c: [(Value, "topological_order", _reverse_operand_order)]),
]


def by_id(bug_id):
    for bug in catalogue() + CONTROLS:
        if bug.id == bug_id:
            return bug
    raise KeyError(bug_id)
