"""Port-trace writers: one dependency-free file per language, to copy into a port (package data; `parity writer
LANG` copies one: parity/commands/writer.py).

Each writes the port-trace format (format 1, parity/sources/porttrace/) with the same calls: open (a path, or "-"
for standard output), meta, init, and per step k from 1: step (doc, loss), grads, params and optionally logits, each
on its own line carrying the step number (the reader merges them), whole arrays or streamed number by number
(begin, value, end). float64 numbers at full round-trip precision, float32 ones (meta dtype "float32") as
float32; nan and inf as NaN, Infinity, -Infinity. A declared variant: facts (weight_decay, grad_clip, norm_eps,
bos, eos) and meta.variant's keys, declared before meta is written, in the order declared; a step may carry the
lr its update used, and a step over several documents writes "docs". A parameter list is one flat array in the
seed's order, or one matrix a call under its name (init, or a step's grads or params; any order: the reader merges
them), so a port that keeps its matrices in a hash map writes them in the map's order.

Imports nothing: microgpt_trace.py is copied into ports as it is.
"""
