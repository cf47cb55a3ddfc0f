"""Comparisons: two records paired by quantity, then each quantity of the reference side against the same from
torch_ref, judged by its own tolerance (as torch.testing.assert_close pairs two structures, then compares leaves).

An element passes when both numbers are finite and |torch - ref| <= atol + rtol * |ref|. A non-finite number
(nan, inf, -inf) on either side never passes, not even against the same non-finite number on the other side:
a run that produced one has gone wrong somewhere, and the report names where it first appeared.
"""

from dataclasses import asdict, dataclass, field
from typing import Optional

import numpy as np


@dataclass(frozen=True)
class Tol:
    """Elementwise: |torch - ref| <= atol + rtol * |ref| must hold for every element."""

    atol: float
    rtol: float

    def __str__(self):
        return f"atol {self.atol:.0e} rtol {self.rtol:.0e}"

    def to_json(self):
        return {"atol": self.atol, "rtol": self.rtol}


def _finite_or_none(x):
    """Strict JSON has no nan or inf: a non-finite error is written as null (see Check.nonfinite for why)."""
    return x if x is None or np.isfinite(x) else None


@dataclass
class Check:
    mode: str  # "lockstep" or "free"
    step: int  # 1-based training step
    quantity: str  # e.g. "layer0.q", "grad:wte", "adam_v:lm_head"
    max_abs: float  # max |torch - ref| over the elements that count (inf when any is non-finite)
    max_rel: float  # max |torch - ref| / |ref| over the elements where ref != 0 (inf when any is non-finite)
    tol: Tol
    ok: bool
    index: Optional[list] = None  # where max_abs occurs; when not ok, the first failing element (row-major)
    position: Optional[int] = None  # sequence position of `index`, for per-position quantities
    detail: dict = field(default_factory=dict)
    # The share of its allowance the worst element used: max |torch - ref| / (atol + rtol * |ref|).
    # Above 1 fails; it shows the margin whichever of the two terms decided. inf when any number is non-finite.
    ratio: float = 0.0
    # None, or where the first non-finite number is: {"side": "ref"|"torch"|"both", "index": [...],
    # "ref": "nan"|"inf"|"-inf"|"0.25" (repr, a string), "torch": ...}; the errors above are then inf (null in JSON).
    nonfinite: Optional[dict] = None
    mismatched: int = 0  # elements outside their allowance (or non-finite), of `numel` that count
    numel: int = 0

    def to_json(self):
        d = asdict(self)
        d["tol"] = self.tol.to_json()
        for k in ("max_abs", "max_rel", "ratio"):
            d[k] = _finite_or_none(d[k])
        if not self.detail:
            d.pop("detail")
        return d


def _describe_number(x):
    return repr(float(x))  # always a string ("nan", "inf", "0.25"): one type per JSON key


def _nonfinite(a, b, counted):
    """The first element (row-major) where either side is non-finite, described; None when all are finite."""
    bad_a, bad_b = ~np.isfinite(a) & counted, ~np.isfinite(b) & counted
    either = bad_a | bad_b
    if not either.any():
        return None
    flat = int(np.argmax(either.reshape(-1)))
    idx = np.unravel_index(flat, a.shape) if a.shape else ()
    side = "both" if bad_a[idx] and bad_b[idx] else ("ref" if bad_a[idx] else "torch")
    return {"side": side, "index": [int(i) for i in idx], "ref": _describe_number(a[idx]),
            "torch": _describe_number(b[idx])}


def compare(mode, step, quantity, ref, torch, tol, mask=None, per_position=False):
    """Compare two same-shaped arrays (as float64); `mask` selects the elements that count (default: all)."""
    a = np.asarray(ref, dtype=np.float64)
    b = np.asarray(torch, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"{quantity}: the reference has shape {a.shape} but torch_ref has {b.shape}")
    if mask is None:
        check = _compare_batch(mode, step, [(quantity, a, b, tol, per_position)])[0]
        if check is not None:  # finite on both sides, and not empty
            return check
    counted = np.ones(a.shape, dtype=bool) if mask is None else np.broadcast_to(np.asarray(mask, dtype=bool), a.shape)
    nonfinite = _nonfinite(a, b, counted)
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.where(counted, np.abs(b - a), 0.0)
        allowance = tol.atol + tol.rtol * np.abs(a)
        bad = counted & ~(diff <= allowance)  # nan compares False, so a nan difference is bad
    if nonfinite is not None:
        bad |= counted & ~(np.isfinite(a) & np.isfinite(b))
        diff = np.where(counted & ~(np.isfinite(a) & np.isfinite(b)), np.inf, diff)
    ok = not bool(bad.any())
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        rel = np.where(counted & (a != 0), diff / np.abs(a), 0.0)
        ratio = np.where(counted, diff / allowance, 0.0)
    rel = np.where(np.isnan(rel), np.inf, rel)
    ratio = np.where(np.isnan(ratio), np.inf, ratio)
    max_abs = float(diff.max()) if diff.size else 0.0
    max_rel = float(rel.max()) if rel.size else 0.0
    max_ratio = float(ratio.max()) if ratio.size else 0.0
    if nonfinite is not None:
        max_abs = max_rel = max_ratio = float("inf")
    if nonfinite is not None:
        index = nonfinite["index"]
    elif diff.size:
        flat = int(np.argmax(bad.reshape(-1))) if not ok else int(np.argmax(diff.reshape(-1)))
        index = [int(i) for i in np.unravel_index(flat, diff.shape)] if diff.shape else []
    else:
        index = []
    position = index[0] if per_position and index else None
    return Check(mode, step, quantity, max_abs, max_rel, tol, ok, index, position, ratio=max_ratio,
                 nonfinite=nonfinite, mismatched=int(bad.sum()), numel=int(counted.sum()))


class PairingError(ValueError):
    """Two records that do not hold the same quantities: a bug of the harness, never the user's divergence."""


def pair(quantities, ref, torch, ref_name="the reference"):
    """[(quantity, ref array, torch array)] for each quantity, in order; PairingError naming, in one line, every
    quantity either record lacks."""
    missing_ref = [q.name for q in quantities if q.name not in ref]
    missing_torch = [q.name for q in quantities if q.name not in torch]
    if missing_ref or missing_torch:
        parts = [f"{who} lacks {', '.join(names[:6])}{' ...' if len(names) > 6 else ''}"
                 for who, names in ((ref_name, missing_ref), ("torch_ref", missing_torch)) if names]
        raise PairingError("records do not pair: " + "; ".join(parts))
    return [(q, ref[q.name], torch[q.name]) for q in quantities]


def causal_mask(shape):
    """(T, T): position t attends to positions 0..t, the only ones pure computes."""
    return np.tril(np.ones(shape, dtype=bool))


def compare_records(mode, step, quantities, ref, torch, tolerance_of, ref_name="the reference"):
    """One Check per quantity of `quantities`, the two records paired first; tolerance_of(quantity) -> Tol.

    The quantities without a mask are compared all at once (`_compare_batch`: a parity step compares 142 per mode,
    and numpy's cost per call, not per element, is most of the time on arrays this small); each Check is the one
    `compare` makes alone, which tests/test_compare_batch.py checks `==` on random records."""
    items = [(q.name, a, b, tolerance_of(q), q.per_position, q.causal)
             for q, a, b in pair(quantities, ref, torch, ref_name)]
    unmasked = [i for i, item in enumerate(items) if not item[5]]
    checks = [None] * len(items)
    for i, check in zip(unmasked, _compare_batch(mode, step, [items[i][:5] for i in unmasked])):
        checks[i] = check
    for i, (name, a, b, tol, per_position, causal) in enumerate(items):
        if checks[i] is None:  # a mask, or what the batch leaves to compare (non-finite, empty, another shape)
            checks[i] = compare(mode, step, name, a, b, tol, causal_mask(np.shape(a)) if causal else None,
                                per_position)
    return checks


def _compare_batch(mode, step, items):
    """compare() without a mask of every (quantity name, ref, torch, tol, per_position) at once: a Check per item, or
    None where compare's general path must judge it (a shape that differs, no elements, a non-finite number). Per
    element, the same float operations as that path; the element named is the first failing one, else the first
    of the greatest difference. compare() itself uses it for one item, so there is one fast path;
    tests/test_nonfinite.py checks it against the general path."""
    A = [np.asarray(item[1], dtype=np.float64) for item in items]
    B = [np.asarray(item[2], dtype=np.float64) for item in items]
    usable = [i for i in range(len(items)) if A[i].shape == B[i].shape and A[i].size]
    out = [None] * len(items)
    if not usable:
        return out
    sizes = np.array([A[i].size for i in usable])
    offsets = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    a = np.concatenate([A[i].reshape(-1) for i in usable])
    b = np.concatenate([B[i].reshape(-1) for i in usable])
    atol = np.repeat([items[i][3].atol for i in usable], sizes)
    rtol = np.repeat([items[i][3].rtol for i in usable], sizes)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        d = b - a  # finite exactly when both sides are
        finite = np.isfinite(d)
        diff = np.abs(d)
        abs_a = np.abs(a)
        allowance = atol + rtol * abs_a
        bad = ~(diff <= allowance)
        rel = np.where(a != 0, diff / abs_a, 0.0)
        ratio = diff / allowance
    ratio = np.where(np.isnan(ratio), np.inf, ratio)  # 0 / 0 where the allowance is 0 (atol 0), as compare
    all_finite = np.logical_and.reduceat(finite, offsets)
    n_bad = np.add.reduceat(bad.astype(np.int64), offsets)
    ok = n_bad == 0
    # the element named: the first failing one, else the first of the greatest difference
    score = np.where(np.repeat(ok, sizes), np.where(finite, diff, 0.0), bad.astype(np.float64))
    best = np.repeat(np.maximum.reduceat(score, offsets), sizes)
    at = np.flatnonzero(score == best)
    segment = np.searchsorted(offsets, at, side="right") - 1
    _, first = np.unique(segment, return_index=True)
    local = at[first] - offsets
    max_abs, max_rel = np.maximum.reduceat(diff, offsets), np.maximum.reduceat(rel, offsets)
    max_ratio = np.maximum.reduceat(ratio, offsets)
    for k, i in enumerate(usable):
        if not all_finite[k]:
            continue
        name, _, _, tol, per_position = items[i]
        shape = A[i].shape
        index = [int(x) for x in np.unravel_index(int(local[k]), shape)] if shape else []
        position = index[0] if per_position and index else None
        out[i] = Check(mode, step, name, float(max_abs[k]), float(max_rel[k]), tol, bool(ok[k]), index, position,
                       ratio=float(max_ratio[k]), mismatched=0 if ok[k] else int(n_bad[k]), numel=int(sizes[k]))
    return out
