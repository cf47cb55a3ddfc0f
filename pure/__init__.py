"""pure: a standard-library-only scalar microgpt, bit-identical to the seed program."""

__version__ = "0.2.0"  # the project's one version number (pyproject.toml reads it from here)

from .data import DataError, Tokenizer, load_docs
from .engine import Value, js_pow
from .model import GPTConfig, flatten, gpt, init_params, linear, param_shapes, rmsnorm, softmax
from .optim import Adam, AdamConfig
from .rng import Rng
from .train import Trainer, doc_loss, sample_ids

__all__ = [
    "Adam", "AdamConfig", "DataError", "GPTConfig", "Rng", "Tokenizer", "Trainer", "Value",
    "doc_loss", "flatten", "gpt", "init_params", "js_pow", "linear", "load_docs", "param_shapes",
    "rmsnorm", "sample_ids", "softmax",
]
