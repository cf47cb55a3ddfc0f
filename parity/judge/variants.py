"""Declared variants, judged: what a port reports about itself (meta's facts) against what it means to be
(`meta.variant`, its intent), so that a deviation the port declares is checked against torch under it and a
deviation it does not declare never reads agree.

- A fact (meta's `lr`, `beta1`, `beta2`, `eps`, `weight_decay`, `grad_clip`, `norm_eps`) that differs from
  microgpt's and is not declared is a divergence: the check still replays with the port's facts, so the port
  hears of every undeclared fact and of the first numeric divergence too.
- A fact that contradicts the declaration is a divergence.
- Steps over several documents, or step lines whose `lr` is not the declared schedule's, are undeclared too.
- Config and layout facts (n_layer, n_embd, n_head, block_size, steps, chars, bos, eos, dtype) are never
  deviations.
- `strict`: any declared deviation is a divergence (graders and CI jobs that require microgpt itself).

The keys, their values and microgpt's defaults are pure.variants' (the one contract every floor implements).
"""

import json
import math
from dataclasses import dataclass, field

from pure.variants import (
    FACT_KEYS,
    LR_SCHEDULES,
    MICROGPT,
    Variant,
    VariantError,
    echo,
    lr_factor,
    shown,
    supported_values,
)

# A step line's `lr` against the declared schedule, relative to the peak lr. A float32 port rounds its rate to
# 24 bits (relative 6e-8) and a float64 one may order the expression otherwise (1e-16); a real deviation is far
# larger: the linear decay off by one step moves the rate by lr / steps, 1e-5 of the peak even for 100,000
# steps. 1e-6 is 16x float32's rounding and 10x below that.
LR_RTOL = 1e-6


def _close(lr, expected, peak):
    return math.isfinite(lr) and abs(lr - expected) <= LR_RTOL * max(abs(peak), abs(expected), 1e-300)


def _number(x):
    return x if isinstance(x, (int, float)) and not isinstance(x, bool) else None


@dataclass
class Declaration:
    """A trace's facts and intent, resolved: `effective` is the variant the judge replays (the declaration, with
    the port's own facts), `declared` what the port declared, `errors` the deviations it did not declare."""

    declared: Variant = field(default_factory=Variant)
    effective: Variant = field(default_factory=Variant)
    errors: list = field(default_factory=list)  # one sentence each, naming the key, the values and the fix
    undeclared: dict = field(default_factory=dict)  # key -> the port's value: what the fix would declare
    strict: bool = False

    @classmethod
    def from_meta(cls, meta, make_error):
        """Read a meta object's facts and `variant`; make_error(message): the exception (the reader's TraceError)
        for a declaration that is not supported, or a fact that is not a number."""
        raw = meta.get("variant", {})
        try:
            declared = Variant.from_dict(raw)
        except VariantError as e:
            raise make_error(f"meta.variant: {e}") from None
        except TypeError as e:
            raise make_error(f"meta.variant: {e}; supported: {supported_values()}") from None
        facts = {}
        for key in FACT_KEYS:
            if key not in meta:
                continue
            value = meta[key]
            if key == "grad_clip" and (value is None or value == 0):
                value = None  # no clipping, as said by 0 or null
            elif isinstance(value, str) or _number(value) is not None:
                try:
                    value = float.fromhex(value) if isinstance(value, str) and "x" in value.lower() else float(value)
                except ValueError:
                    raise make_error(f"meta.{key} must be a number, got {echo(value)}") from None
                except OverflowError:  # a hex float or an integer beyond any double
                    raise make_error(f"meta.{key} {echo(value)} is beyond the range of a double") from None
            else:
                raise make_error(f"meta.{key} must be a number, got {echo(value)}")
            facts[key] = value
        try:
            effective = declared.with_changes(**facts)
        except VariantError as e:
            raise make_error(f"meta: {e}") from None
        self = cls(declared, effective)
        for key, value in facts.items():
            base = getattr(MICROGPT, key)
            if key in raw and value != getattr(declared, key):
                self.errors.append(f"meta says {key} {shown(value)} but the variant declares {key} "
                                   f"{shown(getattr(declared, key))}: the port's facts contradict its declaration; "
                                   f"declare the value it trains with")
            elif key not in raw and value != base:
                self.undeclared[key] = value
        return self

    def for_check(self, strict=False):
        """A copy for one check to add what its steps show to (the trace's own stays as read)."""
        return Declaration(self.declared, self.effective, list(self.errors), dict(self.undeclared), strict)

    # ---- what the steps show ------------------------------------------------------------------------------------

    def step_docs(self, count):
        """A step trained on `count` documents: undeclared when the port declared one a step."""
        if count > 1 and self.declared.docs_per_step == 1 and "docs_per_step" not in self.undeclared:
            self.undeclared["docs_per_step"] = count

    def step_lr(self, step, lr, total_steps):
        """A step line's lr against the rate the declared schedule gives at 1-based `step` of `total_steps` (the
        first mismatch only); when another schedule gives that rate, the fix names it."""
        if lr is None or any(e.startswith("the trace's lr") for e in self.errors):
            return
        peak, schedule = self.effective.lr, self.effective.lr_schedule
        expected = peak * lr_factor(schedule, step - 1, total_steps)
        if _close(lr, expected, peak):
            return
        other = [s for s in LR_SCHEDULES if s not in (schedule, "custom")
                 and _close(lr, peak * lr_factor(s, step - 1, total_steps), peak)]
        declare = (f"\"variant\": {{\"lr_schedule\": \"{other[0]}\"}}, the {other[0]} schedule's rate" if other else
                   "\"variant\": {\"lr_schedule\": \"custom\"} (the rates on the step lines are then the schedule)")
        self.errors.append(f"the trace's lr at step {step} is {lr:.9g}, where the {schedule} schedule "
                           f"(lr {peak:g}) gives {expected:.9g}: the port's schedule is not the "
                           f"declared one; if intended, declare it: {declare}")

    # ---- the verdict ---------------------------------------------------------------------------------------------

    def problems(self):
        """Every sentence that makes the verdict diverge on the declaration alone."""
        out = list(self.errors)
        if self.undeclared:
            words = ", ".join(f"{k} {shown(v)} (microgpt: {shown(getattr(MICROGPT, k))})" if k != "docs_per_step"
                              else f"{v} documents a step (microgpt: 1)" for k, v in self.undeclared.items())
            out.insert(0, f"undeclared deviation{'s' if len(self.undeclared) > 1 else ''} from microgpt: {words}; "
                          f"if intended, declare {'them' if len(self.undeclared) > 1 else 'it'}: "
                          f"\"variant\": {json.dumps(self.undeclared)}")
        if self.strict and not self.declared.is_microgpt:
            out.append(f"--strict: the port declares a variant of microgpt ({self.declared.describe()}), and a strict "
                       f"check requires microgpt itself")
        return out

    def to_json(self):
        """The JSON's top-level `variant`: the declared deviations (null for microgpt itself)."""
        return None if self.declared.is_microgpt else self.declared.deviations()
