"""Tolerances, named per quantity family, per torch dtype and per mode.

A check passes when every element satisfies |torch - pure| <= atol + rtol * |pure|
(parity.compare). The absolute term carries the weight: gradients and moments
have many elements near zero whose relative error is meaningless, and the
noise is set by the scale of the sums that produced them, not by the element.

Every number below is a measured noise floor times a stated margin. The float64
figures come from `python -m parity run --steps 1000` on the names data (default
config, 142,002 checks): the worst max_abs per family over all 1000 steps.
Lockstep errors stay flat over the run (a fresh step each time); free errors
grow slowly (about 3x from the first 100 steps to step 1000).
"""

from .compare import Tol
from .quantities import family

# float64, lockstep: each step from identical state, so only one step's rounding (a few ulps).
F64_LOCKSTEP = {
    "activation": Tol(atol=1e-13, rtol=1e-12),  # measured 1.8e-15 (O(1) values); ~55x
    "logits": Tol(atol=5e-13, rtol=1e-12),  # measured 4.4e-15; ~110x
    "loss": Tol(atol=1e-13, rtol=1e-12),  # measured 1.3e-15 on losses ~2-3.5; ~75x
    "act_grad": Tol(atol=3e-14, rtol=1e-12),  # measured 3.3e-16; ~90x
    "param_grad": Tol(atol=5e-14, rtol=1e-12),  # measured 5.6e-16; ~90x
    "adam_m": Tol(atol=1e-14, rtol=1e-12),  # measured 8.3e-17; ~120x
    "adam_v": Tol(atol=1e-15, rtol=1e-12),  # measured 1.4e-17; ~70x
    # measured 2.8e-16 here, and 3.2e-15 on a small corpus: Adam's first step maps g to
    # lr*g/(|g|+eps), which amplifies the noise of gradients near eps by up to lr/(4*eps); ~30x
    "param": Tol(atol=1e-13, rtol=1e-12),
}

# float64, free: two trajectories apart for up to 1000 steps, so the gap compounds.
F64_FREE = {
    "activation": Tol(atol=3e-12, rtol=1e-10),  # measured 2.5e-14 by step 1000; ~120x
    "logits": Tol(atol=2e-12, rtol=1e-10),  # measured 1.8e-14; ~110x
    "loss": Tol(atol=2e-13, rtol=1e-10),  # measured 1.8e-15; ~110x
    "act_grad": Tol(atol=2e-13, rtol=1e-10),  # measured 2.1e-15; ~95x
    "param_grad": Tol(atol=2e-13, rtol=1e-10),  # measured 2.3e-15; ~90x
    "adam_m": Tol(atol=4e-14, rtol=1e-10),  # measured 3.8e-16; ~105x
    "adam_v": Tol(atol=1e-14, rtol=1e-10),  # measured 1.2e-16; ~85x
    "param": Tol(atol=5e-13, rtol=1e-10),  # measured 5.4e-15; ~95x
}

F32_LOCKSTEP = {f: Tol(1e-5, 1e-4) for f in F64_LOCKSTEP}  # PLACEHOLDER
F32_FREE = {f: Tol(1e-3, 1e-2) for f in F64_LOCKSTEP}  # PLACEHOLDER

TOLERANCES = {
    ("float64", "lockstep"): F64_LOCKSTEP,
    ("float64", "free"): F64_FREE,
    ("float32", "lockstep"): F32_LOCKSTEP,
    ("float32", "free"): F32_FREE,
}


def tolerance(quantity, dtype, mode):
    return TOLERANCES[(dtype, mode)][family(quantity)]
