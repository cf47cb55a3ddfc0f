"""What a replay of the first diverging step needs (`StepState`), kept by the step loop that found it
(`StateRecorder`): the state before the step and the port's numbers of it, and nothing after it."""

from dataclasses import dataclass
from typing import Optional

from pure.optim import AdamConfig

HISTORY_STEPS = 200  # gradients kept per step to rebuild Adam's moments under each hypothesis; past that, torch's


@dataclass
class StepState:
    """Everything a replay of one step needs: the state before it and the port's numbers of it."""

    config: object  # pure.GPTConfig
    step: int  # 1-based: the step that diverged
    tokens: list
    weights: list  # every parameter before the step, flat in the seed's order
    adam: AdamConfig
    total_steps: int  # the lr decay's length
    port: dict  # the port's numbers of the step: "loss", "logits", "grad:<name>", "param:<name>" (float64 arrays)
    phase: str  # where the first divergence is
    dtype: str = "float64"  # the tolerances the verdict used
    reference: str = "port"
    m: Optional[list] = None  # Adam's moments before the step, when known exactly (`run`); else rebuilt
    v: Optional[list] = None
    grad_history: Optional[list] = None  # the port's gradients of steps 1..k-1 (None: too many, or not traced)
    torch_moments: Optional[tuple] = None  # (m, v) of torch's lockstep Adam before the step: the fallback
    prev_grads: Optional[list] = None  # the port's gradients of the step before, flat (None: step 1, or untraced)
    free_agrees: Optional[bool] = None  # whether free mode agreed over the whole run (None: unknown)
    loss_reduction: str = "token_mean"  # a variant's, over a step of several documents (tokens: a list of lists)


class StateRecorder:
    """Fed by a step loop, keeps what a replay of the first diverging step needs, and nothing after it."""

    def __init__(self, config, adam, total_steps, dtype, reference="port", loss_reduction="token_mean"):
        self.config, self.adam, self.total_steps, self.dtype, self.reference = config, adam, total_steps, dtype, \
            reference
        self.loss_reduction = loss_reduction
        self.history, self.state, self.before_step = [], None, None

    @property
    def done(self):
        return self.state is not None

    def before(self, step, tokens, weights, m=None, v=None, torch_moments=None, prev_grads=None):
        """The state before 1-based `step` (weights None: unknown, so the step cannot be replayed); torch_moments:
        (m, v), or a function returning them."""
        if not self.done:
            self.before_step = (step, tokens, weights, m, v, torch_moments, prev_grads)

    def after(self, grads):
        """The port's gradients of the step just done (flat, or None when the trace has none)."""
        if self.done:
            return
        if self.history is not None and grads is not None and len(self.history) < HISTORY_STEPS:
            self.history.append(grads.tolist() if hasattr(grads, "tolist") else [float(x) for x in grads])
        else:
            self.history = None  # no gradients this step, or too many steps: rebuild no more

    def diverged(self, port_record, phase):
        """The step just compared diverged (first time): keep its state."""
        if self.done or self.before_step is None:
            return
        step, tokens, weights, m, v, torch_moments, prev_grads = self.before_step
        if weights is None:
            return
        if callable(torch_moments):  # made lazily (parity.commands.check): the step diverged, so they are needed now
            torch_moments = torch_moments()
        history = list(self.history) if self.history is not None else None
        if prev_grads is None and history and len(history) == step - 1:
            prev_grads = history[-1]
        self.state = StepState(self.config, step, tokens, [float(x) for x in weights], self.adam, self.total_steps,
                               dict(port_record), phase, self.dtype, self.reference, m, v, history, torch_moments,
                               prev_grads, loss_reduction=self.loss_reduction)
