"""One comparison: a quantity from pure against the same from torch_ref, judged by its own tolerance."""

from dataclasses import asdict, dataclass, field
from typing import Optional

import numpy as np


@dataclass(frozen=True)
class Tol:
    """Elementwise: |torch - pure| <= atol + rtol * |pure| must hold for every element."""

    atol: float
    rtol: float

    def __str__(self):
        return f"atol {self.atol:.0e} rtol {self.rtol:.0e}"


@dataclass
class Check:
    mode: str  # "lockstep" or "free"
    step: int  # 1-based training step
    quantity: str  # e.g. "layer0.q", "grad:wte", "adam_v:lm_head"
    max_abs: float  # max |torch - pure|
    max_rel: float  # max |torch - pure| / |pure| over the elements where pure != 0
    tol: Tol
    ok: bool
    index: Optional[list] = None  # where max_abs occurs (first failing element when not ok)
    position: Optional[int] = None  # sequence position of `index`, for per-position quantities
    detail: dict = field(default_factory=dict)

    def to_json(self):
        d = asdict(self)
        d["tol"] = asdict(self.tol)
        if not self.detail:
            d.pop("detail")
        return d


def compare(mode, step, quantity, pure, torch, tol, mask=None, per_position=False):
    """Compare two same-shaped arrays (float64 views); `mask` selects the elements that count."""
    a = np.asarray(pure, dtype=np.float64)
    b = np.asarray(torch, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"{quantity}: pure has shape {a.shape} but torch_ref has {b.shape}")
    diff = np.abs(b - a)
    if mask is not None:
        diff = np.where(mask, diff, 0.0)
    # nan anywhere (in either) is a failure: make it the largest difference
    diff = np.where(np.isnan(diff), np.inf, diff)
    bad = diff > tol.atol + tol.rtol * np.abs(a)
    ok = not bool(bad.any())
    scale = np.abs(a)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(scale > 0, diff / scale, 0.0)
    max_abs = float(diff.max()) if diff.size else 0.0
    max_rel = float(rel.max()) if rel.size else 0.0
    if diff.size:
        flat = int(np.argmax(bad)) if not ok else int(np.argmax(diff))
        index = [int(i) for i in np.unravel_index(flat, diff.shape)]
    else:
        index = []
    position = index[0] if per_position and index else None
    return Check(mode, step, quantity, max_abs, max_rel, tol, ok, index, position)
