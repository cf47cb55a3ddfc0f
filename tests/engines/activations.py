"""Engines with the MLP activations of microgpt's declared variants (issue 28), for the tests of `parity ops`.

`Activations` is wrong_rules.Engine (correct) plus every optional method `parity ops` knows, each rule right:
tanh, sigmoid, erf, gelu (the erf form), gelu_tanh (the tanh approximation) and silu. Each subclass below gets
one of them wrong, with a plausible slip:

- WrongErf: d/dx erf x = e^(-x^2) (the 2/sqrt(pi) factor forgotten);
- WrongSigmoid: d/dx s(x) = s(x) (the (1 - s(x)) factor forgotten);
- WrongSilu: d/dx x s(x) = s(x) (the product rule forgotten);
- TanhGelu: `gelu` is GELU's tanh approximation (as many micrograd extensions write it), its rule right for it.
"""

import math

from tests.engines.wrong_rules import Engine

K = math.sqrt(2 / math.pi)
C = 0.044715


def _sigmoid(x):
    return 1 / (1 + math.exp(-x))


def _phi(x):
    return math.exp(-x * x / 2) / math.sqrt(2 * math.pi)


def _cdf(x):
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


class Activations(Engine):
    """Correct: every rule right."""

    def tanh(self):
        t = math.tanh(self.data)
        return self._node(t, ((self, 1 - t * t),))

    def sigmoid(self):
        s = _sigmoid(self.data)
        return self._node(s, ((self, self._sigmoid_grad(s)),))

    def _sigmoid_grad(self, s):
        return s * (1 - s)

    def erf(self):
        x = self.data
        return self._node(math.erf(x), ((self, self._erf_grad(x)),))

    def _erf_grad(self, x):
        return 2 / math.sqrt(math.pi) * math.exp(-x * x)

    def gelu(self):
        x = self.data
        return self._node(x * _cdf(x), ((self, _cdf(x) + x * _phi(x)),))

    def gelu_tanh(self):
        x = self.data
        t = math.tanh(K * (x + C * x ** 3))
        return self._node(0.5 * x * (1 + t), ((self, 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * K * (1 + 3 * C * x * x)),))

    def silu(self):
        x = self.data
        s = _sigmoid(x)
        return self._node(x * s, ((self, self._silu_grad(x, s)),))

    def _silu_grad(self, x, s):
        return s * (1 + x * (1 - s))


class WrongErf(Activations):
    def _erf_grad(self, x):
        return math.exp(-x * x)  # wrong: the factor 2/sqrt(pi) is missing


class WrongSigmoid(Activations):
    def _sigmoid_grad(self, s):
        return s  # wrong: s instead of s (1 - s)


class WrongSilu(Activations):
    def _silu_grad(self, x, s):
        return s  # wrong: the product rule forgotten (x s'(x) missing)


class TanhGelu(Activations):
    gelu = Activations.gelu_tanh  # the tanh approximation under the name parity keeps for the erf form
