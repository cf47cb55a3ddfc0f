"""Every tolerance of the harness, each with the measured noise it was set from and its margin: per quantity
family, torch dtype and mode for `run` and `check`; then those of `ops`.

A check passes when every element satisfies |torch - pure| <= atol + rtol * |pure|
(parity.judge.compare). The absolute term carries the weight: gradients and moments
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

# torch_ref in float32 against pure's float64. Measured with `parity run --dtype float32 --steps 200`
# on the names data (28,402 checks). Lockstep loads pure's weights rounded to float32, so even the
# updated weights carry ~1 float32 ulp. These bounds are ~1e8 times the float64 ones: in float32 the
# harness still catches a wrong rule (errors of order 1e-1 and up), but not a 1e-6 weight perturbation.
F32_LOCKSTEP = {
    "activation": Tol(atol=1e-5, rtol=1e-5),  # measured 8.1e-7; ~12x
    "logits": Tol(atol=2e-5, rtol=1e-5),  # measured 1.3e-6; ~15x
    "loss": Tol(atol=5e-6, rtol=1e-5),  # measured 4.1e-7; ~12x
    "act_grad": Tol(atol=3e-6, rtol=1e-5),  # measured 2.6e-7; ~11x
    "param_grad": Tol(atol=3e-6, rtol=1e-5),  # measured 2.6e-7; ~11x
    "adam_m": Tol(atol=5e-7, rtol=1e-5),  # measured 3.8e-8; ~13x
    "adam_v": Tol(atol=1e-7, rtol=1e-5),  # measured 9.4e-9; ~11x
    "param": Tol(atol=2e-6, rtol=1e-5),  # measured 1.3e-7; ~15x
}
# float32, free: measured with `parity run --dtype float32 --modes free --steps 1000` on the names data
# (71,001 checks), the worst max_abs over the whole run, where the gap is largest.
F32_FREE = {
    "activation": Tol(atol=1e-4, rtol=1e-4),  # measured 9.8e-6 by step 1000 (1.9e-6 over 200 steps); ~10x
    "logits": Tol(atol=1e-4, rtol=1e-4),  # measured 6.1e-6; ~16x
    "loss": Tol(atol=1e-5, rtol=1e-4),  # measured 6.8e-7; ~15x
    "act_grad": Tol(atol=1e-5, rtol=1e-4),  # measured 7.2e-7; ~14x
    "param_grad": Tol(atol=1e-5, rtol=1e-4),  # measured 8.8e-7; ~11x
    "adam_m": Tol(atol=3e-6, rtol=1e-4),  # measured 2.3e-7; ~13x
    "adam_v": Tol(atol=2e-6, rtol=1e-4),  # measured 1.3e-7; ~15x
    "param": Tol(atol=2e-5, rtol=1e-4),  # measured 1.7e-6; ~12x
}

TOLERANCES = {
    ("float64", "lockstep"): F64_LOCKSTEP,
    ("float64", "free"): F64_FREE,
    ("float32", "lockstep"): F32_LOCKSTEP,
    ("float32", "free"): F32_FREE,
}


def tolerance(quantity, dtype, mode):
    """The Tol of a Quantity (or a quantity's name) in that dtype and mode."""
    fam = quantity.family if hasattr(quantity, "family") else family(quantity)
    return TOLERANCES[(dtype, mode)][fam]


# ---- `parity ops` (on the mixed error |got - expected| / max(1, the case's largest |expected|): parity.ops.checks).
# Measured on pure.Value and on the independently written correct engines of tests/engines (closures and sets;
# direct sub/div rules, libm pow, Kahn's order; a third style), over upstream-gradient seeds 0..9: the largest
# errors are in the comments. The smallest error of any wrong rule of tests/engines/wrong_rules.py, on the op it
# breaks, is 0.51, over 1e7x above OPS_FD_TOL.
OPS_FWD_TOL = 1e-12  # forward values vs torch: measured max 1.6e-16 (ops), 2.1e-16 (composites); margin ~5000x
OPS_GRAD_TOL = 1e-12  # input gradients vs torch.autograd: measured max 3.2e-16 (ops), 2.6e-15 (composites); ~400x
# Central differences of torch's L with step h = OPS_FD_STEP (OPS_FD_STEP * |x| for ops singular at 0 such as log
# and x**-0.5, so that the step stays clear of the singularity): truncation error is O(h^2); the rounding error,
# eps * sum_j |w_j out_j| / h per input, is allowed OPS_FD_ROUNDING_ULPS times on top of OPS_FD_TOL.
OPS_FD_STEP = 1e-6
# gradients vs finite differences, beyond rounding: measured max 1.9e-12 (ops), 1.3e-10 (composites, truncation in
# cross-entropy and attention), for torch's gradients and every correct engine's alike; margin ~75x
OPS_FD_TOL = 1e-8
OPS_FD_ROUNDING_ULPS = 16.0  # measured rounding error of the differences <= 0.9 of eps * sum_j |w_j out_j| / h; ~18x


def ops_tolerances():
    """The ops tolerances, as `parity ops --json` reports them."""
    return {"fwd": OPS_FWD_TOL, "grad": OPS_GRAD_TOL, "fd": OPS_FD_TOL, "fd_step": OPS_FD_STEP,
            "fd_rounding_ulps": OPS_FD_ROUNDING_ULPS}
