"""A small synthetic corpus of made-up, pronounceable lowercase words (no real names data).

Generated with its own 32-bit LCG rather than the `random` module, so the words are the same on
every Python version. Most documents are 2..12 letters long; every 100th document (index 37, 137,
237, ...) is 18..22 letters long, longer than the default block size of 16, so block truncation is
exercised. Only 19 letters are used (vocab size 20 with BOS), unlike the 26 of the names data.
"""

from pathlib import Path

CONSONANTS = "bdfgklmnprstvz"
VOWELS = "aeiou"

_LCG_A = 1664525
_LCG_C = 1013904223
_MASK = 0xFFFFFFFF


class _Lcg:
    """state <- (1664525 * state + 1013904223) mod 2**32; draws use the high 16 bits."""

    def __init__(self, seed):
        self.state = (seed * 2654435761 + 12345) & _MASK

    def below(self, n):
        self.state = (_LCG_A * self.state + _LCG_C) & _MASK
        return (self.state >> 16) % n


def _word(lcg, length):
    """Alternate consonants and vowels (starting with either) until `length` letters."""
    vowel = lcg.below(3) == 0  # most words start with a consonant
    letters = []
    while len(letters) < length:
        if vowel:
            letters.append(VOWELS[lcg.below(len(VOWELS))])
        else:
            letters.append(CONSONANTS[lcg.below(len(CONSONANTS))])
            # an occasional two-consonant cluster inside the word (never first, always before a vowel)
            if 1 < len(letters) <= length - 2 and lcg.below(8) == 0:
                letters.append(CONSONANTS[lcg.below(len(CONSONANTS))])
        vowel = not vowel
    return "".join(letters[:length])


def make_corpus(n_docs=300, seed=0):
    """`n_docs` deterministic made-up words; documents at index 37 mod 100 are 18..22 letters long."""
    lcg = _Lcg(seed)
    docs = []
    for i in range(n_docs):
        length = 18 + lcg.below(5) if i % 100 == 37 else 2 + lcg.below(11)
        docs.append(_word(lcg, length))
    return docs


def write_corpus(path, **kw):
    """Write make_corpus(**kw) to `path`, one document per line; returns the path."""
    path = Path(path)
    path.write_text("".join(doc + "\n" for doc in make_corpus(**kw)))
    return path


if __name__ == "__main__":
    import sys

    write_corpus(sys.argv[1] if len(sys.argv) > 1 else "corpus.txt")
