"""The variants of microgpt that ports mean to have: the one contract every floor implements.

Published ports deviate from the final gist on purpose (and so did Karpathy's own earlier revisions): another
activation, a cosine schedule, other betas, several documents a step. A port declares such deviations as
`meta.variant` in its trace; `pure train --variant KEY=VALUE,...`, `torch_ref train --variant ...` and
`parity run --variant ...` take the same keys. `Variant` holds one declaration, with microgpt's own values as
the defaults, and knows which keys and values exist; this module also holds pure's side of the variants that
are arithmetic (the activations and the lr schedules). The model's fields go to `GPTConfig` and the optimizer's
to `AdamConfig` (`model_fields`, `adam_config`), so the step loops never see a flag.
"""

import math
from dataclasses import dataclass, fields, replace
from typing import Optional

ACTIVATIONS = ("relu", "relu2", "gelu", "gelu_tanh", "silu")
LR_SCHEDULES = ("linear", "cosine", "constant", "custom")
LOSS_REDUCTIONS = ("token_mean", "doc_mean")
SQRT_HALF = math.sqrt(0.5)  # gelu's x / sqrt(2)
GELU_TANH_K = math.sqrt(2 / math.pi)  # the tanh approximation's constant


def shown(value):
    """A variant's value as every message says it: none, true / false, a float in %g, else as it is."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    return f"{value:g}" if isinstance(value, float) else str(value)


class VariantError(ValueError):
    """A declaration the project does not support: the message lists the supported keys and values."""


@dataclass(frozen=True)
class Variant:
    """One declaration of deviations from microgpt; every default is microgpt's (the seed's) own value."""

    activation: str = "relu"  # the MLP's nonlinearity: relu, relu2 (relu(x)^2), gelu (erf), gelu_tanh, silu
    lr_schedule: str = "linear"  # lr at 0-based step t: linear lr(1 - t/steps), cosine, constant, custom (traced)
    lr: float = 0.01  # the peak learning rate
    beta1: float = 0.85  # Adam's first-moment decay
    beta2: float = 0.99  # Adam's second-moment decay
    eps: float = 1e-8  # Adam's eps, added to sqrt(v_hat)
    weight_decay: float = 0.0  # decoupled weight decay, as torch.optim.AdamW applies it
    grad_clip: Optional[float] = None  # the largest global L2 norm of the gradients (clip_grad_norm_); None: none
    grad_clip_eps: float = 1e-6  # the clipping's scale is grad_clip / (norm + this): clip_grad_norm_'s; 0: c / norm
    norm_eps: float = 1e-5  # rmsnorm's eps, inside the square root
    tie_embeddings: bool = False  # lm_head is wte (one matrix; no lm_head among the parameters)
    docs_per_step: int = 1  # documents in one step's loss
    loss_reduction: str = "token_mean"  # several documents: mean over every predicted position, or of each doc's mean

    def __post_init__(self):
        choices = {"activation": ACTIVATIONS, "lr_schedule": LR_SCHEDULES, "loss_reduction": LOSS_REDUCTIONS}
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise VariantError(f"unsupported variant {key} {echo(getattr(self, key))}; supported: "
                                   f"{', '.join(allowed)}")
        for key in ("lr", "beta1", "beta2", "eps", "weight_decay", "norm_eps", "grad_clip_eps"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise VariantError(f"variant {key} must be a finite number, got {echo(value)}")
            object.__setattr__(self, key, float(value))
        for key in ("beta1", "beta2"):
            if not 0 <= getattr(self, key) < 1:
                raise VariantError(f"variant {key} must be in [0, 1), got {echo(getattr(self, key))}")
        if min(self.lr, self.eps, self.weight_decay, self.norm_eps, self.grad_clip_eps) < 0:
            raise VariantError("variant lr, eps, weight_decay, norm_eps and grad_clip_eps must not be negative")
        if self.grad_clip is not None:
            g = self.grad_clip
            if isinstance(g, bool) or not isinstance(g, (int, float)) or not (math.isfinite(g) and g > 0):
                raise VariantError(f"variant grad_clip must be a positive number (the largest global L2 norm), "
                                   f"got {echo(g)}")
            object.__setattr__(self, "grad_clip", float(g))
        if not isinstance(self.tie_embeddings, bool):
            raise VariantError(f"variant tie_embeddings must be true or false, got {echo(self.tie_embeddings)}")
        d = self.docs_per_step
        if isinstance(d, bool) or not isinstance(d, int) or d < 1:
            raise VariantError(f"variant docs_per_step must be a positive integer, got {echo(d)}")

    # ---- reading a declaration ----------------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, declared):
        """A Variant from a `meta.variant` object: every key must be one of KEYS, with a supported value."""
        if not isinstance(declared, dict):
            raise VariantError(f"variant must be an object of KEY: VALUE, got {type(declared).__name__}")
        unknown = [k for k in declared if k not in KEYS]
        if unknown:
            raise VariantError(f"unsupported variant key {echo(unknown[0])}; supported keys: {', '.join(KEYS)} "
                               f"({supported_values()})")
        return cls(**declared)

    @classmethod
    def parse(cls, spec):
        """A Variant from the command line's `KEY=VALUE[,KEY=VALUE...]` (numbers, true/false, words)."""
        return cls.from_dict(parse_spec(spec))

    # ---- what it declares ---------------------------------------------------------------------------------------

    def deviations(self):
        """The keys whose value differs from microgpt's, with their values, in KEYS order."""
        return {k: getattr(self, k) for k in KEYS if getattr(self, k) != getattr(MICROGPT, k)}

    @property
    def is_microgpt(self):
        return not self.deviations()

    def describe(self):
        """`activation relu2, lr_schedule cosine, beta1 0.9 (microgpt: 0.85), beta2 0.95 (0.99)`."""
        words, said = [], False
        for key, value in self.deviations().items():
            if isinstance(value, float) or key == "grad_clip":
                words.append(f"{key} {shown(value)} ({'' if said else 'microgpt: '}{shown(getattr(MICROGPT, key))})")
                said = True
            else:
                words.append(f"{key} {shown(value)}")
        return ", ".join(words)

    # ---- the floors' configs ----------------------------------------------------------------------------------

    def model_fields(self):
        """The GPTConfig fields of this variant (defaults left out, so a microgpt config reads as before)."""
        out = {}
        if self.activation != "relu":
            out["activation"] = self.activation
        if self.norm_eps != MICROGPT.norm_eps:
            out["norm_eps"] = self.norm_eps
        if self.tie_embeddings:
            out["tie_embeddings"] = True
        return out

    def adam_config(self, **changes):
        """The AdamConfig of this variant (pure.optim; torch_ref builds torch.optim's from the same one)."""
        from .optim import AdamConfig

        return AdamConfig(lr=self.lr, beta1=self.beta1, beta2=self.beta2, eps=self.eps,
                          lr_schedule=self.lr_schedule, weight_decay=self.weight_decay, grad_clip=self.grad_clip,
                          grad_clip_eps=self.grad_clip_eps,
                          **changes)

    def check_docs(self, n_docs):
        """A run draws docs_per_step of its n_docs documents a step: more than there are is a mistake, not a batch."""
        if self.docs_per_step > n_docs:
            raise VariantError(f"variant docs_per_step {self.docs_per_step} is more than the {n_docs} documents; "
                               f"give at most {n_docs}")

    def docs_of_step(self, docs, step):
        """The 0-based step's documents: docs_per_step of them, the next ones in `docs`' order, cycling."""
        n = self.docs_per_step
        return [docs[(step * n + i) % len(docs)] for i in range(n)]

    def with_changes(self, **changes):
        return replace(self, **changes)


KEYS = tuple(f.name for f in fields(Variant))
MICROGPT = Variant()
# Keys a port reports about itself at meta's top level (facts), which are deviations when they differ from
# microgpt's; the config and layout facts (n_layer, ..., steps, chars, bos, eos, dtype) never are.
FACT_KEYS = ("lr", "beta1", "beta2", "eps", "weight_decay", "grad_clip", "grad_clip_eps", "norm_eps")


def parse_spec(spec):
    """The command line's `KEY=VALUE[,KEY=VALUE...]` as a declaration (a dict), each value in its key's type."""
    declared = {}
    for item in (spec or "").split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, text = item.partition("=")
        key, text = key.strip(), text.strip()
        if not sep or not key or not text:
            raise VariantError(f"--variant takes KEY=VALUE[,KEY=VALUE...], got {echo(item)}")
        if key in declared:
            raise VariantError(f"--variant gives {key} twice")
        if key not in KEYS:
            raise VariantError(f"unsupported variant key {echo(key)}; supported keys: {', '.join(KEYS)}")
        declared[key] = _value(key, text)
    return declared


ECHO_CHARS = 60  # the most of a given value or key an error line repeats (a trace's meta may hold megabytes)


def echo(x):
    """repr(x), cut to ECHO_CHARS."""
    text = repr(x)
    return text if len(text) <= ECHO_CHARS else text[:ECHO_CHARS] + f"... ({len(text)} characters)"


def for_run(declared, lr=None):
    """The Variant a run trains (`pure train`, `torch_ref train`, `parity run`): a declaration (a dict, or the
    command line's KEY=VALUE text) and an lr given apart (--lr), which must agree with a declared one. A custom
    schedule is a port's own rates, so no run trains one. VariantError for anything unusable."""
    declared = parse_spec(declared) if isinstance(declared, str) else dict(declared or {})
    variant = Variant.from_dict(declared)
    if variant.lr_schedule == "custom":
        raise VariantError("lr_schedule=custom: a custom schedule is a port's own rates, read from its trace by "
                           "`parity check`; train with linear, cosine or constant")
    if lr is not None and lr != variant.lr:
        if "lr" in declared:
            raise VariantError(f"the lr is given twice, {lr:g} and lr={variant.lr:g}; give it once")
        variant = variant.with_changes(lr=lr)
    return variant


def supported_values():
    return (f"activation: {' | '.join(ACTIVATIONS)}; lr_schedule: {' | '.join(LR_SCHEDULES)}; loss_reduction: "
            f"{' | '.join(LOSS_REDUCTIONS)}; tie_embeddings: true | false; docs_per_step: a positive integer; "
            f"lr, beta1, beta2, eps, weight_decay, grad_clip, grad_clip_eps, norm_eps: numbers")


def _value(key, text):
    """A command-line value in the type of `key`'s field."""
    kind = type(getattr(MICROGPT, key, ""))
    if key == "tie_embeddings":
        if text.lower() in ("true", "1", "yes"):
            return True
        if text.lower() in ("false", "0", "no"):
            return False
        raise VariantError(f"variant tie_embeddings must be true or false, got {echo(text)}")
    if key == "docs_per_step":
        try:
            return int(text)
        except ValueError:
            raise VariantError(f"variant docs_per_step must be a positive integer, got {echo(text)}") from None
    if kind is float or key == "grad_clip":
        if key == "grad_clip" and text.lower() == "none":
            return None
        try:
            return float(text)
        except ValueError:
            raise VariantError(f"variant {key} must be a number, got {echo(text)}") from None
    return text


# ---- pure's side of the arithmetic variants ---------------------------------------------------------------------

def activate(x, activation):
    """The MLP's nonlinearity on one Value, with the Value protocol's ops (and tanh, sigmoid, erf for the others)."""
    if activation == "relu":
        return x.relu()
    if activation == "relu2":
        return x.relu() ** 2  # the gist's earlier `xi.relu() ** 2`
    if activation == "gelu":
        return 0.5 * x * (1 + (x * SQRT_HALF).erf())  # x * Phi(x)
    if activation == "gelu_tanh":
        return 0.5 * x * (1 + (GELU_TANH_K * (x + 0.044715 * x ** 3)).tanh())
    if activation == "silu":
        return x * x.sigmoid()
    raise VariantError(f"unsupported activation {echo(activation)}; supported: {', '.join(ACTIVATIONS)}")


def lr_factor(schedule, step, total_steps):
    """The multiple of the peak lr at the 0-based `step` of a run of `total_steps` (the custom schedule's rates
    are the port's own: pure.optim.Adam reads them)."""
    if schedule == "linear":
        return 1 - step / total_steps
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * step / total_steps))
    if schedule == "constant":
        return 1.0
    raise VariantError(f"the {echo(schedule)} schedule has no formula: its rates are the trace's own")
