"""Adam with linear learning-rate decay to zero, exactly as the seed updates its parameters; and the optimizer
of a declared variant (pure.variants): another schedule, decoupled weight decay (AdamW), gradient clipping."""

import math
from dataclasses import dataclass, field
from typing import Optional

from .engine import js_pow
from .variants import lr_factor


@dataclass(frozen=True)
class AdamConfig:
    lr: float = 0.01  # peak learning rate, decayed linearly to 0 over the run
    beta1: float = 0.85  # decay of the first moment (mean of gradients)
    beta2: float = 0.99  # decay of the second moment (mean of squared gradients)
    eps: float = 1e-8  # added to sqrt(v_hat) so the step stays finite where v_hat is ~0
    # A declared variant's optimizer (pure.variants); the defaults are the seed's.
    lr_schedule: str = "linear"  # linear, cosine, constant, or custom: `rates` below
    weight_decay: float = 0.0  # decoupled, as torch.optim.AdamW: p *= 1 - lr_t * weight_decay before the update
    grad_clip: Optional[float] = None  # scale the gradients so that their global L2 norm is at most this
    grad_clip_eps: float = 1e-6  # ... by grad_clip / (norm + grad_clip_eps): clip_grad_norm_'s 1e-6; 0: c / norm
    rates: tuple = field(default=(), repr=False)  # the custom schedule: the lr of each 0-based step, as traced



class Adam:
    """One moment pair per scalar parameter; `step(t)` updates `.data` and zeroes `.grad`."""

    def __init__(self, params, total_steps, config=None):
        if total_steps < 1:
            raise ValueError(f"total_steps must be at least 1, got {total_steps}")
        self.params = params
        self.total_steps = total_steps
        self.config = config or AdamConfig()
        self.m = [0.0] * len(params)
        self.v = [0.0] * len(params)

    def lr_at(self, step):
        """Learning rate of the 0-based `step`: lr * (1 - step / total_steps), the seed's; or the variant's schedule."""
        c = self.config
        if c.lr_schedule == "linear":
            return c.lr * (1 - step / self.total_steps)
        if c.lr_schedule == "custom":
            if not 0 <= step < len(c.rates):
                raise ValueError(f"the custom schedule has {len(c.rates)} rates; step {step} has none")
            return c.rates[step]
        return c.lr * lr_factor(c.lr_schedule, step, self.total_steps)

    def clip_scale(self):
        """clip_grad_norm_'s factor for the current gradients: min(1, grad_clip / (norm + 1e-6)), the norm summed
        left to right over the parameters in order (1 without clipping; a variant may drop the 1e-6)."""
        if self.config.grad_clip is None:
            return 1.0
        total = 0.0
        for p in self.params:
            total += p.grad * p.grad
        norm = math.sqrt(total) + self.config.grad_clip_eps
        return min(1.0, self.config.grad_clip / norm) if norm > 0 else 1.0

    def bias_corrections(self, step):
        """(1 - beta1^t, 1 - beta2^t) for t = step + 1: undo the moments' pull towards their zero start.

        The seed writes `beta ** (step + 1)`, which JavaScript computes by repeated squaring.
        """
        c = self.config
        return 1 - js_pow(c.beta1, step + 1), 1 - js_pow(c.beta2, step + 1)

    def step(self, step):
        """Update every parameter from its .grad for the 0-based `step`, then zero the gradients."""
        c = self.config
        lr_t = self.lr_at(step)
        bias1, bias2 = self.bias_corrections(step)
        m, v = self.m, self.v
        # The seed's expressions, term for term; the constants are hoisted out of the loop (the same floats),
        # and v_hat ** 0.5 is sqrt, as js_pow computes it (v_hat >= 0).
        beta1, beta2, one_minus_beta1, one_minus_beta2, eps = c.beta1, c.beta2, 1 - c.beta1, 1 - c.beta2, c.eps
        sqrt = math.sqrt
        if c.grad_clip is None and not c.weight_decay:  # the seed's update
            for i, p in enumerate(self.params):
                g = p.grad
                m[i] = m_i = beta1 * m[i] + one_minus_beta1 * g
                v[i] = v_i = beta2 * v[i] + one_minus_beta2 * g * g
                p.data -= lr_t * (m_i / bias1 / (sqrt(v_i / bias2) + eps))  # m_hat / (sqrt(v_hat) + eps)
        else:  # a variant's: the gradients clipped first, the weights decayed before the update (AdamW's order)
            scale, decay = self.clip_scale(), 1 - lr_t * c.weight_decay
            for i, p in enumerate(self.params):
                g = p.grad * scale if scale != 1.0 else p.grad
                m[i] = m_i = beta1 * m[i] + one_minus_beta1 * g
                v[i] = v_i = beta2 * v[i] + one_minus_beta2 * g * g
                p.data = p.data * decay - lr_t * (m_i / bias1 / (sqrt(v_i / bias2) + eps))
        self.zero_grad()

    def zero_grad(self):
        for p in self.params:
            p.grad = 0
