"""Command line: `train` and `sample`, shared by pure and torch_ref (each passes its Backend)."""

import argparse
import math
import os
import sys
from dataclasses import dataclass
from typing import Callable, Optional

from . import __version__
from .checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from .data import ENV_VAR, DataError, load_docs_or_corpus
from .model import GPTConfig
from .optim import AdamConfig
from .outputs import OutputError, OutputPlan, Terminated, handle_sigterm
from .progress import Progress
from .rng import Rng
from .trace import TraceWriter
from .variants import KEYS, VariantError, for_run, supported_values

INFERENCE_HEADER = "--- inference (new, hallucinated names) ---"
# A loss above this means the target's probability is below the smallest normal double (2.2e-308, whose -ln
# is 708.4): training has diverged. pure's softmax then rounds that probability to 0 and its loss becomes inf,
# while torch's log-softmax keeps a finite 1e20; both implementations stop on this one rule.
MAX_LOSS = 708.0

# Exit codes shared by every command of the project.
EXIT_OK, EXIT_DIVERGED, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3
EXIT_INTERRUPTED, EXIT_BROKEN_PIPE, EXIT_TERMINATED = 130, 141, 143


class UsageError(Exception):
    """Bad flags or values: exit 2 with a one-line message."""


class TrainingDiverged(Exception):
    """The loss became non-finite or too large to be a probability's -log: exit 1."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (`error: ...; see --help`) and exit 2, like every other bad input.

    An unknown flag is reported by the (sub)command that was given it, so the hint points at that command's
    own --help rather than the top level's.
    """

    def error(self, message):
        self.exit(EXIT_USAGE, f"error: {message}; see `{self.prog} --help`\n")

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return namespace, extras


def add_version(parser, name):
    label = name if name.startswith("microgpt") else f"{name} (microgpt-parity)"
    parser.add_argument("--version", action="version", version=f"{label} {__version__}")


def prog_name(default):
    """The name the user typed: `microgpt-pure` for the installed command, else `python -m pure`."""
    invoked = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return invoked if invoked and not invoked.endswith((".py", "__main__")) and invoked != "-c" else default


def line_buffered():
    """Progress reaches a log or a pipe line by line, not in 8 KB blocks."""
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)


def check_loss(loss, step, lr):
    """Stop a run whose loss is no longer a number a probability could give (see MAX_LOSS)."""
    if not (math.isfinite(loss) and loss <= MAX_LOSS):
        raise TrainingDiverged(f"loss became {loss} at step {step}: training diverged; lower --lr (the peak learning "
                               f"rate, now {lr:g}) or check the data")


def guarded(body, *args):
    """Run a command's body with the project's one-line errors and exit codes (see EXIT_*)."""
    handle_sigterm()
    try:
        return body(*args)
    except TrainingDiverged as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_DIVERGED
    except (DataError, CheckpointError, UsageError, OutputError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("\ninterrupted; no partial output was kept", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Terminated:
        print("terminated (SIGTERM); no partial output was kept", file=sys.stderr)
        return EXIT_TERMINATED
    except BrokenPipeError:
        # The reader went away (`| head`): say nothing more, and keep Python from complaining at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except Exception as e:  # noqa: BLE001 - a bug of the program itself: never reported as the user's divergence
        return internal_error(e)


def internal_error(exc):
    """One `internal error:` line naming a file that holds the traceback; exit 3."""
    import tempfile
    import traceback

    text = "".join(traceback.format_exception(exc))
    try:
        fd, path = tempfile.mkstemp(prefix="microgpt-parity-internal-error-", suffix=".txt")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        where = f"; the traceback is in {path}"
    except OSError:
        where = ""
    message = " ".join(str(exc).split()) or type(exc).__name__
    print(f"internal error: {type(exc).__name__}: {message}{where} (a bug of the program, not a finding about "
          f"the code it checks; please report it)", file=sys.stderr)
    return EXIT_INTERNAL


@dataclass
class Backend:
    name: str  # written into traces and checkpoints
    make_trainer: Callable  # (docs, args, variant: pure.variants.Variant) -> trainer (see pure.train.Trainer)
    sample_checkpoint: Callable  # (ckpt, rng, n, temperature, args) -> list of strings
    add_args: Optional[Callable] = None  # (parser) -> None: backend-only flags, e.g. --dtype
    describe: Optional[Callable] = None  # (args) -> dict of extra trace meta


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def non_negative_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text}")
    return value


def add_model_args(p, steps=1000):
    """The flags that define a run: data, seed, schedule and model size (defaults are the seed's)."""
    p.add_argument("--data", metavar="PATH", help=f"names file, one document per line (default: ${ENV_VAR}, "
                   "then the cache, then a checked download)")
    p.add_argument("--seed", type=int, default=42, help="RNG seed for shuffle, init and sampling (default: 42)")
    p.add_argument("--steps", type=positive_int, default=steps,
                   help=f"training steps; the lr decays to 0 over them (default: {steps})")
    p.add_argument("--n-layer", type=positive_int, default=1, help="transformer blocks (default: 1)")
    p.add_argument("--n-embd", type=positive_int, default=16, help="embedding width (default: 16)")
    p.add_argument("--n-head", type=positive_int, default=4, help="attention heads; must divide --n-embd (default: 4)")
    p.add_argument("--block-size", type=positive_int, default=16, help="context length (default: 16)")
    p.add_argument("--lr", type=positive_float, default=None,
                   help=f"peak Adam learning rate (default: {AdamConfig.lr}); the same as --variant lr=LR")
    add_variant_arg(p)


VARIANT_HELP = ("a declared variant of microgpt: KEY=VALUE[,KEY=VALUE...] with the keys "
                f"{', '.join(KEYS)} ({supported_values()}); default: microgpt itself")


def add_variant_arg(p):
    p.add_argument("--variant", metavar="KEY=VALUE,...", default="", help=VARIANT_HELP)


def variant_of(args):
    """The run's Variant, from --variant and --lr (pure.variants.for_run); UsageError if invalid."""
    try:
        return for_run(args.variant, args.lr)
    except VariantError as e:
        raise UsageError(f"--variant: {e}") from None


def variant_facts(variant):
    """What a trace's meta says of a variant: the facts (lr, betas, eps, and the others where set) and the
    declaration of its deviations, `variant` (absent for microgpt itself)."""
    facts = {"lr": variant.lr, "beta1": variant.beta1, "beta2": variant.beta2, "eps": variant.eps}
    for key in ("weight_decay", "norm_eps"):
        if variant.deviations().get(key) is not None:
            facts[key] = getattr(variant, key)
    if variant.grad_clip is not None:
        facts["grad_clip"] = variant.grad_clip
        if "grad_clip_eps" in variant.deviations():
            facts["grad_clip_eps"] = variant.grad_clip_eps
    if not variant.is_microgpt:
        facts["variant"] = variant.deviations()
    return facts


def add_sampling_args(p):
    p.add_argument("--temperature", type=positive_float, default=0.5, help="sampling temperature (default: 0.5)")
    p.add_argument("--samples", type=non_negative_int, default=20, help="names to sample (default: 20)")
    return p


def build_parser(prog, backend):
    parser = ArgumentParser(prog=prog, description=f"microgpt ({backend.name}): train on names, sample new ones. "
                            "Exit 0 done, 1 training diverged, 2 usage or input error.")
    add_version(parser, prog)
    sub = parser.add_subparsers(dest="command", required=True, metavar="{train,sample}",
                                parser_class=ArgumentParser)
    t = sub.add_parser("train", help="train from the seed's initial weights, then sample",
                       description="Train microgpt exactly as the seed program does, then print samples.")
    add_model_args(t)
    add_sampling_args(t)
    t.add_argument("--trace", metavar="FILE", help="write a JSON-lines trace in the port-trace format: meta, the "
                                                   "initial weights, every step's document, loss and lr, samples "
                                                   "(`parity check FILE` replays it)")
    t.add_argument("--trace-tensors", metavar="N", type=non_negative_int, default=0,
                   help="steps 1..N of the trace also carry every gradient and updated weight, so that `parity "
                        "check` can judge the backward and the optimizer (default: 0)")
    t.add_argument("--save", metavar="FILE", help="write a JSON checkpoint after training")
    s = sub.add_parser("sample", help="sample names from a checkpoint",
                       description="Sample names from a checkpoint written by `train --save`.")
    s.add_argument("--load", metavar="FILE", required=True, help="checkpoint written by `train --save`")
    add_sampling_args(s)
    s.add_argument("--seed", type=int, default=None,
                   help="sample from a fresh Rng(SEED) (default: continue the training run's RNG stream, "
                        "which reproduces the samples printed by train)")
    for sp in (t, s):
        if backend.add_args:
            backend.add_args(sp)
    return parser


def check_config(args):
    """Catch an invalid model config or variant from the flags alone, before the data is read (vocab_size comes
    later)."""
    GPTConfig(n_layer=args.n_layer, n_embd=args.n_embd, n_head=args.n_head, block_size=args.block_size)
    return variant_of(args)


def cmd_train(args, backend):
    variant = check_config(args)
    plan = OutputPlan({"--trace": args.trace, "--save": args.save},
                      inputs={"--data": args.data or os.environ.get(ENV_VAR)}).check()
    with plan:
        docs, _ = load_docs_or_corpus(args.data, warn=lambda text: print(text, file=sys.stderr))
        trainer = backend.make_trainer(docs, args, variant)
        print(f"num docs: {len(trainer.docs)}")
        print(f"vocab size: {trainer.config.vocab_size}")
        print(f"num params: {trainer.num_params}")
        trace = TraceWriter(args.trace) if args.trace else None
        try:
            if trace:
                c = trainer.config
                trace.meta(format=1, implementation=backend.name, n_layer=c.n_layer, n_embd=c.n_embd,
                           n_head=c.n_head, block_size=c.block_size, chars="".join(trainer.tokenizer.chars),
                           config=c.to_dict(), seed=args.seed, steps=args.steps, **variant_facts(variant),
                           temperature=args.temperature, samples=args.samples,
                           num_docs=len(trainer.docs), vocab_size=c.vocab_size, num_params=trainer.num_params,
                           **(backend.describe(args) if backend.describe else {}))
                trace.init(trainer.flat_values())
            # the seed's `step    k / N | loss x` line, on stdout; in a log with the seconds so far
            progress = Progress(args.steps, sys.stdout, lines=20, timed_on_tty=False)
            for step in range(args.steps):
                grads = [] if trace and step < args.trace_tensors else None
                loss = trainer.train_step(step, on_grads=None if grads is None else
                                          (lambda t, grads=grads: grads.extend(t.flat_values("grad"))))
                check_loss(loss, step + 1, variant.lr)
                progress.update(step + 1, f"step {step + 1:4d} / {args.steps} | loss {loss:.4f}")
                if trace:
                    docs_now = variant.docs_of_step(trainer.docs, step)
                    one = len(docs_now) == 1
                    trace.step(step + 1, loss, trainer.lr_at(step), doc=docs_now[0] if one else None,
                               docs=None if one else docs_now, grads=grads,
                               params=None if grads is None else trainer.flat_values())
            progress.close()
            rng_state = trainer.rng.get_state()  # before sampling, so `sample --load` repeats these samples
            print(INFERENCE_HEADER)
            for i in range(1, args.samples + 1):  # one at a time, so each name shows as soon as it is drawn
                text = trainer.sample(1, args.temperature)[0]
                print(f"sample {i:2d}: {text}")
                if trace:
                    trace.sample(i, text)
            if args.save:
                save_checkpoint(args.save, Checkpoint(
                    config=trainer.config, chars=trainer.tokenizer.chars, params=trainer.export_params(),
                    rng_state=rng_state,
                    meta={"implementation": backend.name, "seed": args.seed, "steps": args.steps, "lr": variant.lr,
                          **({"variant": variant.deviations()} if not variant.is_microgpt else {})}))
        except BaseException:
            if trace:
                trace.abort()
            raise
        if trace:
            trace.commit()
    return EXIT_OK


def cmd_sample(args, backend):
    ckpt = load_checkpoint(args.load)
    if args.seed is None:
        rng = Rng(0)
        rng.set_state(ckpt.rng_state)
    else:
        rng = Rng(args.seed)
    print(INFERENCE_HEADER)
    for i in range(1, args.samples + 1):  # one at a time: each name shows as soon as it is drawn
        text = backend.sample_checkpoint(ckpt, rng, 1, args.temperature, args)[0]
        print(f"sample {i:2d}: {text}")
    return EXIT_OK


def main(argv=None, *, prog, backend):
    line_buffered()
    args = build_parser(prog, backend).parse_args(argv)
    return guarded(cmd_train if args.command == "train" else cmd_sample, args, backend)
