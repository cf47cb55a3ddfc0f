"""torch_ref: the seed's microgpt as an idiomatic torch.nn.Module, trained by torch.optim.Adam.

An independent implementation for checking `pure` against: the same config,
the same seeded weights (drawn from pure.Rng), the same documents in the same
order, and the same sampler; everything else is PyTorch's own.
"""

from .intermediates import record_intermediates
from .model import KVCache, MicroGPT
from .train import TorchTrainer, resolve_device, resolve_dtype, sample_checkpoint, sample_ids
from .weights import init_from_rng, intermediate_map, load_pure_params, name_map, to_pure_params

__all__ = [
    "KVCache", "MicroGPT", "TorchTrainer", "init_from_rng", "intermediate_map", "load_pure_params", "name_map",
    "record_intermediates", "resolve_device", "resolve_dtype", "sample_checkpoint", "sample_ids", "to_pure_params",
]
