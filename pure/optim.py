"""Adam with linear learning-rate decay to zero, exactly as the seed updates its parameters."""

import math
from dataclasses import dataclass

from .engine import js_pow


@dataclass(frozen=True)
class AdamConfig:
    lr: float = 0.01  # peak learning rate, decayed linearly to 0 over the run
    beta1: float = 0.85  # decay of the first moment (mean of gradients)
    beta2: float = 0.99  # decay of the second moment (mean of squared gradients)
    eps: float = 1e-8  # added to sqrt(v_hat) so the step stays finite where v_hat is ~0


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
        """Learning rate of the 0-based `step`: lr * (1 - step / total_steps)."""
        return self.config.lr * (1 - step / self.total_steps)

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
        for i, p in enumerate(self.params):
            g = p.grad
            m[i] = m_i = beta1 * m[i] + one_minus_beta1 * g
            v[i] = v_i = beta2 * v[i] + one_minus_beta2 * g * g
            p.data -= lr_t * (m_i / bias1 / (sqrt(v_i / bias2) + eps))  # m_hat / (sqrt(v_hat) + eps)
        self.zero_grad()

    def zero_grad(self):
        for p in self.params:
            p.grad = 0
