"""The port trace: what a microgpt port in any language writes so that `parity check` can judge it.

JSON lines, read as a stream (a 1000-step trace with every tensor is ~70 MB; memory stays flat):

    {"meta": {"n_layer": 1, "n_embd": 16, "n_head": 4, "block_size": 16, "chars": "abc...z"}}
    {"init": [every parameter before training, in the seed's order]}
    {"step": 1, "doc": "emma", "loss": 3.48, "grads": [...], "params": [...], "logits": [[...], ...]}
    ...

meta may also hold `implementation` (free text), `steps` (the length of the linear lr decay), `lr`, `beta1`,
`beta2`, `eps`, `weight_decay`, `grad_clip`, `norm_eps` (the port's facts; default: the seed's), `bos`, `eos` (the
ids of BOS and of a separate end token), `dtype` ("float32" for a float32 port) and `variant` (the deviations
from microgpt the port declares: parity.judge.variants). A step may carry `lr` (the rate its update used) and several
documents (`docs`, or `tokens` as a list of id lists). A parameter list is either flat,
in the seed's order (wte, wpe, lm_head, then per layer attn_wq, attn_wk, attn_wv, attn_wo, mlp_fc1, mlp_fc2,
each row by row: `params.map(p => p.data)`), or an object with each matrix under the seed's name (pure.model's
param_shapes: no lm_head with tied embeddings), which may be spread over lines, down to one matrix a line
(`{"init": {"wte": rows}}`, `{"step": k, "grads": {"wte": rows}}`), merged in any order: each matrix once, init's
before the first step, a step's before the next step's. meta.names (and `parity check --names FILE`) maps the port's
own names to the seed's: {"tok_emb": "wte", ...}. A step
gives `doc` (a string over `chars`) or `tokens` (ids, BOS = len(chars) at both ends); `grads` (after
backward, before the update), `params` (after the update) and `logits` (one row per position) are optional,
on any steps, either on the step's line or on lines of their own carrying `"step": k` (merged into step k, in
any order, as long as every line of step k comes before any line of step k+1). Lines that do not start with `{`
(a port's own prints) are skipped. A number that is null, NaN or inf is kept as nan/inf: the port's divergence at
that step, never a reason to refuse the trace. The tokens C, Rust and Go print for them (`nan`, `-nan`, `inf`,
`+Inf`, `-Infinity`, ..., any case) are read too, and so are hex floats (`"0x1.91eb851eb851fp+1"`, C's `%a`,
Java's `Double.toHexString`; quoted or bare), exactly.

The reader, by what it reads: meta (the meta line, the tokens), names (parameter lists, flat or by name), numbers
(forgiving number tokens), limits (`Limits`, `TraceError`), reader (`PortTrace`: the stream, each step's lines
merged), spool (the steps kept as arrays, read in a forked process), precision (what the numbers say: float64,
float32, or too few digits).

May import: parity.judge, parity.sources.forked, parity.errors, pure, numpy.
"""

from .limits import Limits, TraceError
from .reader import PortTrace

__all__ = ["Limits", "PortTrace", "TraceError"]
