"""What a trace may ask of the judge (`Limits`, each a flag of `parity check`), and the one error of an unusable
trace (`TraceError`: one line naming where and what, exit 2)."""

from dataclasses import dataclass


class TraceError(ValueError):
    """An unusable trace: one line naming where and what (exit 2)."""


@dataclass(frozen=True)
class Limits:
    """What a trace may ask of the judge, checked as it is read (each a flag of `parity check`): a legitimate
    trace is far inside every one (the seed's 1000 steps with every tensor: 164 MB, lines of 0.2 MB)."""

    max_line_mb: float = 64.0  # one line (--max-line-mb)
    max_trace_mb: float = 4096.0  # the whole trace, decompressed (--max-trace-mb)
    max_steps: int = 1_000_000  # step lines (--max-steps)
    max_params: int = 50_000_000  # the config's parameter count (--max-params)
    max_memory_mb: float = 4096.0  # what replaying the config would allocate, estimated from its sizes (--max-memory)


META_DEPTH = 8  # nesting of meta's values (a config dict is 2)


def replay_bytes(config):
    """An estimate of what torch_ref allocates to replay a config: per parameter its weight, gradient, Adam's two
    moments and the port's copies (about ten float64s, both modes), the causal mask (block_size^2 bytes), and one
    document's attention (n_layer x n_head x block_size^2 float64s, forward and backward)."""
    c = config
    params = 2 * c.vocab_size * c.n_embd + c.block_size * c.n_embd + 12 * c.n_layer * c.n_embd ** 2
    return 80 * params + c.block_size ** 2 + 3 * 8 * c.n_layer * c.n_head * c.block_size ** 2, params


def within_depth(x, limit):
    if limit < 0:
        return False
    if isinstance(x, dict):
        return all(within_depth(v, limit - 1) for v in x.values())
    if isinstance(x, list):
        return all(within_depth(v, limit - 1) for v in x)
    return True
