"""A trace's numbers, read forgivingly: null, NaN and inf kept as nan/inf (the port's divergence, never a reason
to refuse the trace), the tokens C, Rust and Go print for them, and hex floats, exactly."""

import json
import math
import re

from .limits import TraceError

_HEX = re.compile(r"[+-]?0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)(?:[pP][+-]?[0-9]+)?")
# Outside string literals (which are matched first and kept): the non-finite tokens of C, Rust, Go, Java and
# friends, and bare hex floats. Used only on a line json.loads refused, so normal lines never pay for it; the
# leading lookahead (every alternative's first character) lets the matcher skip the digits quickly.
_LENIENT = re.compile(r'(?=["+\-0nNiI])(?:"(?:[^"\\]|\\.)*"'
                      r"|(?<![\w.])([+-]?)(?:(nan)(?:\(\w*\))?|inf(?:inity)?)(?![\w.])"
                      r"|(?<![\w.])(" + _HEX.pattern + r")(?![\w.]))", re.IGNORECASE)


def _lenient(match):
    sign, nan, hexfloat = match.groups()
    if hexfloat is not None:
        return f'"{hexfloat}"'  # read by read_number, exactly
    if sign is None:
        return match.group()  # a string literal, untouched
    return "NaN" if nan is not None else "-Infinity" if sign == "-" else "Infinity"


def lenient_json(text):
    """A line json.loads refused, read again with its non-finite tokens and bare hex floats rewritten outside its
    strings (json.JSONDecodeError when it is still not JSON)."""
    return json.loads(_LENIENT.sub(_lenient, text))


def read_number(x, where):
    if type(x) is float:
        return x
    if x is None:
        return math.nan  # JavaScript's JSON.stringify writes NaN and inf as null
    if isinstance(x, str) and _HEX.fullmatch(x):
        try:
            return float.fromhex(x)  # C's %a, Java's Double.toHexString: exact
        except OverflowError:
            raise TraceError(f"{where}: hex float {x} is beyond the range of a double") from None
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        hint = " (a string holds a number only as a hex float, e.g. \"0x1.8p+1\")" if isinstance(x, str) else ""
        raise TraceError(f"{where}: expected a number, got {json.dumps(x)[:40]}{hint}")
    try:
        return float(x)
    except OverflowError:  # an integer beyond any double: the port's non-finite value there
        return math.inf if x > 0 else -math.inf


def read_numbers(values, where):
    if set(map(type, values)) == {float}:  # the common case, checked at C speed
        return values
    return [x if type(x) is float else read_number(x, where) for x in values]
