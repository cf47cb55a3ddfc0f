"""`python -m torch_ref train|sample`: the PyTorch reference, with pure's CLI plus --dtype and --device."""

import argparse
import sys

import torch

from pure.cli import Backend, main, prog_name

from .train import CPU_THREADS, DTYPES, TorchTrainer, resolve_device, sample_checkpoint


def device_arg(text):
    """argparse type for --device: only a device that exists here (argparse then exits with code 2)."""
    try:
        resolve_device(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def add_args(parser):
    parser.add_argument("--dtype", choices=list(DTYPES), default="float64",
                        help="floating-point type of weights and activations (default: float64)")
    parser.add_argument("--device", type=device_arg, default="cpu",
                        help="torch device, e.g. cpu, cuda, cuda:1 (default: cpu)")


def make_trainer(docs, args, variant):
    return TorchTrainer(docs, seed=args.seed, steps=args.steps, n_layer=args.n_layer, n_embd=args.n_embd,
                        n_head=args.n_head, block_size=args.block_size, variant=variant,
                        dtype=DTYPES[args.dtype], device=args.device)


BACKEND = Backend(
    name="torch_ref",
    make_trainer=make_trainer,
    sample_checkpoint=lambda ckpt, rng, n, temperature, args: sample_checkpoint(
        ckpt, rng, n, temperature, dtype=DTYPES[args.dtype], device=args.device),
    add_args=add_args,
    describe=lambda args: {"dtype": args.dtype, "device": args.device},
)


def console():
    """The `microgpt-torch` command (and `python -m torch_ref`)."""
    torch.set_num_threads(CPU_THREADS)  # one thread: the tensors are tiny (see torch_ref.train.CPU_THREADS)
    sys.exit(main(prog=prog_name("python -m torch_ref"), backend=BACKEND))


if __name__ == "__main__":
    console()
