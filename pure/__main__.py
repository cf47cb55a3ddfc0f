"""`python -m pure train|sample`: the standard-library microgpt."""

import sys

from .cli import Backend, main, prog_name
from .train import ENGINES, Trainer, sample_checkpoint

ENGINE_HELP = ("fused: one node per sum, several times faster; plain: pure.engine.Value, one node per op, the "
               "readable teaching engine. Both give the same numbers, bit for bit (default: fused)")


def add_args(parser):
    parser.add_argument("--engine", choices=ENGINES, default="fused", help=ENGINE_HELP)


def make_trainer(docs, args, variant):
    return Trainer(docs, seed=args.seed, steps=args.steps, n_layer=args.n_layer, n_embd=args.n_embd,
                   n_head=args.n_head, block_size=args.block_size, variant=variant, engine=args.engine)


BACKEND = Backend(
    name="pure",
    make_trainer=make_trainer,
    sample_checkpoint=lambda ckpt, rng, n, temperature, args: sample_checkpoint(ckpt, rng, n, temperature,
                                                                                engine=args.engine),
    add_args=add_args,
    describe=lambda args: {"engine": args.engine},
)


def console():
    """The `microgpt-pure` command (and `python -m pure`)."""
    sys.exit(main(prog=prog_name("python -m pure"), backend=BACKEND))


if __name__ == "__main__":
    console()
