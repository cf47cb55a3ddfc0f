"""What a trace's numbers say about the port that printed them: float64, float32, or too few digits for either.

A float64 printed at full precision needs up to 17 significant digits; a float32 needs at most 9, and prints
either that way (C's %.9g, Java's Float.toString, Rust's f32, Go's FormatFloat(x, 'g', -1, 32)) or widened
exactly to a double (JavaScript's Math.fround, C's (double)f with %.17g). A number that is neither kind of
float32 can only be a float64. Numbers of 7 digits or fewer everywhere are what %g (6 digits) or toFixed print:
too few for a float32 (9) or a float64 (17). Small or round numbers (0, 1, 0.5: 3 digits or fewer) say nothing
and are not counted.
"""

from dataclasses import dataclass

import numpy as np

MIN_EVIDENCE = 50  # informative numbers needed before the trace's precision is named (default init: 4,192)
SHORT_DIGITS = 7  # every informative number at most this many digits: printed with too few (%g gives 6)
F32_DIGITS = 9  # a float32's shortest round-trip form has at most this many significant digits
TRIVIAL_DIGITS = 3  # numbers this short (0, 1, 0.25, 1e-08) are as short in any precision: not counted


def significant_digits(x):
    """Digits of the shortest decimal that reads back as x (Python's repr of a double)."""
    mantissa = repr(float(x)).lower().split("e")[0].lstrip("-").replace(".", "").lstrip("0")
    return len(mantissa.rstrip("0")) or 1


@dataclass
class Precision:
    kind: str  # "float64", "float32", "short" (too few digits) or "unknown" (too little evidence)
    counted: int  # informative numbers looked at
    max_digits: int  # the most significant digits any of them needed

    def describe(self):
        if self.kind == "float32":
            return f"every number of the trace is a float32 ({self.counted} looked at)"
        if self.kind == "short":
            return (f"the trace's numbers carry at most {self.max_digits} significant digits ({self.counted} looked "
                    f"at), fewer than a float32 (9) or a float64 (17) needs: print them at full precision (%.17g "
                    f"for double, %.9g for float, or the trace writers: python -m parity writer LANG)")
        return f"the trace's numbers are float64 ({self.counted} looked at)"


def precision(values):
    """The Precision of a list of floats (a trace's initial weights, its losses)."""
    x = np.asarray([v for v in values if np.isfinite(v)], dtype=np.float64)
    if not x.size:
        return Precision("unknown", 0, 0)
    widened = x.astype(np.float32).astype(np.float64) == x  # a float32 written exactly as a double
    digits = np.array([significant_digits(v) for v in x])
    informative = digits > TRIVIAL_DIGITS
    counted = int(informative.sum())
    if counted < MIN_EVIDENCE:
        return Precision("unknown", counted, int(digits.max()))
    max_digits = int(digits[informative & ~widened].max()) if (informative & ~widened).any() else 0
    if not widened[informative].all() and max_digits <= SHORT_DIGITS:
        return Precision("short", counted, max_digits)
    if (widened | (digits <= F32_DIGITS))[informative].all():
        return Precision("float32", counted, max_digits)
    return Precision("float64", counted, int(digits[informative].max()))
