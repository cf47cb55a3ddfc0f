"""Checkpoints: one JSON file with the config, the vocabulary, every parameter by name, and the RNG state.

The format is shared with torch_ref, so a model trained by one samples in the
other. Floats are written with repr (shortest round-trip), so loading gives
back the exact bits. Files are written to a temporary file and renamed.
"""

import json
import math
from dataclasses import dataclass

from .model import GPTConfig, param_shapes
from .outputs import atomic_write_bytes

FORMAT = "microgpt-parity/checkpoint"
VERSION = 1


class CheckpointError(Exception):
    """A checkpoint that cannot be used; the message says why and what to do."""


@dataclass
class Checkpoint:
    config: GPTConfig
    chars: list  # the tokenizer's characters, in id order (BOS is len(chars))
    params: dict  # name -> list of rows of floats, in param_shapes order
    rng_state: dict  # Rng.get_state() after training, so sampling continues the run's stream
    meta: dict  # free-form: seed, steps, which implementation wrote it


def save_checkpoint(path, ckpt):
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "config": ckpt.config.to_dict(),
        "vocab": ckpt.chars,
        "params": ckpt.params,
        "rng": ckpt.rng_state,
        "meta": ckpt.meta,
    }
    check_params(ckpt.config, ckpt.params)
    atomic_write_bytes(path, json.dumps(doc, allow_nan=False).encode())


def check_params(config, params):
    """Every expected name present with its shape, nothing extra, every number finite."""
    shapes = param_shapes(config)
    if set(params) != set(shapes):
        missing, extra = sorted(set(shapes) - set(params)), sorted(set(params) - set(shapes))
        raise CheckpointError(f"parameter names do not match the config (missing {missing}, unexpected {extra})")
    for name, (rows, cols) in shapes.items():
        mat = params[name]
        if not isinstance(mat, list) or len(mat) != rows or any(not isinstance(r, list) or len(r) != cols for r in mat):
            raise CheckpointError(f"parameter {name} does not have shape ({rows}, {cols})")
        numbers = (x for r in mat for x in r)
        if not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in numbers):
            raise CheckpointError(f"parameter {name} holds a non-finite or non-numeric value")


def check_rng_state(rng):
    """The Rng snapshot (pure.rng.Rng.get_state): every field present and of its type, named when it is not."""
    if not (isinstance(rng, dict) and {"state", "has_spare", "spare"} <= set(rng)):
        raise CheckpointError("its rng state is incomplete (needs state, has_spare, spare)")
    state = rng["state"]
    if isinstance(state, bool) or not isinstance(state, int) or not 0 <= state < 2**32:
        raise CheckpointError(f"rng.state must be an integer in 0..4294967295, got {state!r}")
    if not isinstance(rng["has_spare"], bool):
        raise CheckpointError(f"rng.has_spare must be true or false, got {rng['has_spare']!r}")
    spare = rng["spare"]
    if isinstance(spare, bool) or not isinstance(spare, (int, float)) or not math.isfinite(spare):
        raise CheckpointError(f"rng.spare must be a finite number, got {spare!r}")


def load_checkpoint(path):
    hint = "; retrain with --save to write a fresh one"
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint not found: {path}; pass the file written by `train --save`") from None
    except IsADirectoryError:
        raise CheckpointError(f"checkpoint {path} is a directory; pass the file written by `train --save`") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"checkpoint {path} is not readable JSON ({e}){hint}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a microgpt-parity checkpoint{hint}")
    if doc.get("version") != VERSION:
        raise CheckpointError(f"{path} has checkpoint version {doc.get('version')}, this program reads {VERSION}{hint}")
    try:
        config = GPTConfig(**doc["config"])
        chars = doc["vocab"]
        rng_state = doc["rng"]
        if not (isinstance(chars, list) and all(isinstance(c, str) and len(c) == 1 for c in chars)):
            raise CheckpointError("its vocab is not a list of single characters")
        if len(chars) + 1 != config.vocab_size:
            raise CheckpointError(
                f"its vocab has {len(chars)} characters + BOS but config.vocab_size is {config.vocab_size}")
        check_rng_state(rng_state)
        check_params(config, doc["params"])
    except CheckpointError as e:
        raise CheckpointError(f"checkpoint {path} is invalid: {e}{hint}") from None
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path} is invalid ({type(e).__name__}: {e}){hint}") from None
    return Checkpoint(config, chars, doc["params"], rng_state, doc.get("meta", {}))
