"""The seed program's deterministic PRNG, bit for bit.

`random()` is mulberry32: a 32-bit state advanced by a Weyl step and mixed
with 32-bit multiplies. JavaScript does that arithmetic in int32/uint32; here
every intermediate is reduced mod 2**32, which gives the same bits because
the only non-modular operation (`t + imul(...)`) is an exact double addition
that JavaScript then truncates with ToInt32, i.e. mod 2**32 as well.
"""

import math

_MASK = 0xFFFFFFFF


def _imul(a, b):
    """Math.imul: the low 32 bits of the product (as unsigned here)."""
    return (a * b) & _MASK


class Rng:
    """Rng(seed): random(), gauss(mean, std), choices(population, weights), shuffle(list)."""

    def __init__(self, seed):
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"Rng seed must be an int, got {seed!r}")
        self._has_spare = False
        self._spare = 0.0
        self._state = seed & _MASK  # `seed >>> 0`

    def random(self):
        """A float in [0, 1) with 32 random bits."""
        self._state = (self._state + 0x6D2B79F5) & _MASK
        s = self._state
        t = _imul(s ^ (s >> 15), s | 1)
        t ^= (t + _imul(t ^ (t >> 7), t | 61)) & _MASK
        return ((t ^ (t >> 14)) & _MASK) / 4294967296

    def gauss(self, mean, std):
        """Box-Muller polar method; the second normal of each pair is kept as a spare."""
        if self._has_spare:
            self._has_spare = False
            return self._spare * std + mean
        while True:
            u = self.random() * 2 - 1
            v = self.random() * 2 - 1
            s = u * u + v * v
            if not (s >= 1 or s == 0):
                break
        mul = math.sqrt((-2 * math.log(s)) / s)
        self._spare = v * mul
        self._has_spare = True
        return u * mul * std + mean

    def choices(self, population, weights):
        """One element of `population`, drawn with the given (unnormalised) weights."""
        total = 0.0
        for w in weights:  # left-to-right, as Array.reduce; never the compensated sum()
            total += w
        r = self.random() * total
        for item, w in zip(population, weights):
            r -= w
            if r <= 0:
                return item
        return population[-1]

    def shuffle(self, items):
        """Fisher-Yates in place, from the back."""
        for i in range(len(items) - 1, 0, -1):
            j = math.floor(self.random() * (i + 1))
            items[i], items[j] = items[j], items[i]

    def get_state(self):
        """A JSON-able snapshot, so a checkpoint can continue the exact stream."""
        return {"state": self._state, "has_spare": self._has_spare, "spare": self._spare}

    def set_state(self, state):
        self._state = int(state["state"]) & _MASK
        self._has_spare = bool(state["has_spare"])
        self._spare = float(state["spare"])
