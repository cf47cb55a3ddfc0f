"""`python -m pure train|sample`: the standard-library microgpt."""

import sys

from .cli import Backend, main, prog_name
from .train import Trainer, sample_checkpoint


def make_trainer(docs, args, adam):
    return Trainer(docs, seed=args.seed, steps=args.steps, n_layer=args.n_layer, n_embd=args.n_embd,
                   n_head=args.n_head, block_size=args.block_size, adam=adam)


BACKEND = Backend(
    name="pure",
    make_trainer=make_trainer,
    sample_checkpoint=lambda ckpt, rng, n, temperature, args: sample_checkpoint(ckpt, rng, n, temperature),
)


def console():
    """The `microgpt-pure` command (and `python -m pure`)."""
    sys.exit(main(prog=prog_name("python -m pure"), backend=BACKEND))


if __name__ == "__main__":
    console()
