"""`python -m parity run`: compare pure and torch_ref step by step; `ops`: check every rule of a Value class
against torch.autograd and finite differences; `mutants`: show that injected bugs are caught and localised;
`check`: judge a port in any language from the trace it writes.
Exit 0 agree, 1 diverge, 2 usage/input error."""

import contextlib
import os
import sys

from pure.cli import (
    EXIT_DIVERGED,
    EXIT_OK,
    ArgumentParser,
    UsageError,
    add_model_args,
    add_sampling_args,
    add_version,
    check_config,
    guarded,
    line_buffered,
    non_negative_int,
    prog_name,
)
from pure.data import ENV_VAR
from pure.outputs import AtomicFile, OutputPlan
from pure.progress import Progress
from pure.train import default_engine

from .user_value import PROTOCOL

EXIT_AGREE, EXIT_DIVERGE = EXIT_OK, EXIT_DIVERGED  # and 2 for usage or input errors (pure.cli.EXIT_USAGE)
VALUE_HELP = f"a Value class of your own, as module:Class or path/to/file.py:Class, following micrograd's protocol: " \
             f"{PROTOCOL}"


# ---- the command line --------------------------------------------------------------------------------------------

def add_report_args(p):
    """The report's outputs, shared by `run` and `check`."""
    p.add_argument("--json", metavar="FILE", help="write the report as JSON: the verdict, the first divergence, "
                                                  "the worst check of each quantity and mode, the per-step series")
    p.add_argument("--details", metavar="FILE", help="also write every check of every step, one JSON line each "
                                                     "(written as the run goes, renamed into place at the end)")
    p.add_argument("--plot", metavar="FILE.png", help="plot each quantity family's error per step as a share of its "
                                                      "tolerance; the format follows the extension (.png, .svg, .pdf)")
    p.add_argument("--no-table", action="store_true", help="print only the verdict line")


def build_parser(prog="python -m parity"):
    p = ArgumentParser(prog=prog, description=__doc__)
    add_version(p, prog)
    sub = p.add_subparsers(dest="command", required=True, metavar="{run,ops,mutants,check}",
                           parser_class=ArgumentParser)
    r = sub.add_parser("run", help="train pure and torch_ref side by side and compare every step",
                       description="Train pure and torch_ref from the same seed and compare logits, loss, gradients, "
                                   "Adam moments and updated weights at every step, in lockstep and free modes. "
                                   "Exit 0 agree, 1 diverge, 2 usage or input error.")
    add_model_args(r)  # the seed's defaults: 1000 steps
    add_sampling_args(r)  # the samples after training are compared as strings
    r.add_argument("--dtype", default="float64", choices=["float64", "float32"],
                   help="torch_ref's dtype; pure is float64 (default: float64)")
    r.add_argument("--device", default="cpu", help="torch_ref's device, e.g. cpu or cuda (default: cpu)")
    r.add_argument("--modes", default="lockstep,free",
                   help="comma-separated: lockstep (reset torch to pure before every step), free (independent "
                        "trajectories) (default: both)")
    add_report_args(r)
    r.add_argument("--value", metavar="SPEC", help=VALUE_HELP + " (default: pure's own Value)")
    r.add_argument("--engine", choices=["fused", "plain"], default=None,
                   help="pure's engine: fused (one node per sum, the default for pure's own Value) or plain "
                        "(pure.engine.Value, one node per op; always used for --value); bit for bit the same")
    o = sub.add_parser("ops", help="check every op and composite of a Value class against torch and finite "
                                   "differences",
                       description="For every operation of the Value protocol (add, sub, mul, div, neg, pow with "
                                   "exponents 2, 3, 0.5, -0.5, -1, exp, log, relu, forms with numbers, reused nodes) "
                                   "and every composite of the model (softmax, rmsnorm, linear, attention head, "
                                   "cross-entropy), on a table of inputs with edge cases and random non-uniform "
                                   "upstream gradients: compare forward values and gradients with torch.autograd "
                                   "(float64) and central finite differences. Exit 0 all ok, 1 any op wrong, "
                                   "2 usage error.")
    o.add_argument("--value", metavar="SPEC", help=VALUE_HELP + " (default: pure's own Value)")
    o.add_argument("--json", metavar="FILE", help='write {"verdict": ..., "ops": [{"op", "ok", ...}]} as JSON')
    o.add_argument("--seed", type=non_negative_int, default=0, help="seed of the upstream gradients (default: 0)")
    m = sub.add_parser("mutants", help="inject deliberate bugs into pure and show the harness catches each one",
                       description="Inject each bug of the catalogue into pure at run time (no file is edited), run "
                                   "`ops` and a short `run` (3 steps, n_embd 8) against torch, and report whether it "
                                   "was caught and localised. Harmless controls must agree. Exit 0 only when every "
                                   "real bug is caught and localised and every control agrees.")
    m.add_argument("--data", metavar="PATH", help="documents for the short runs (default: the built-in synthetic "
                                                  "corpus, so this works offline)")
    m.add_argument("--only", metavar="NAMES", help="comma-separated mutant names (default: all)")
    m.add_argument("--json", metavar="FILE", help='write {"mutants": [{"name", "caught", "localized", '
                                                  '"first_divergence", ...}]} as JSON')
    c = sub.add_parser("check", help="check a port in any language from the trace it writes",
                       description="Replay a microgpt port's run in torch_ref from the port's own initial weights and "
                                   "documents (the port-trace format: see the README), and compare its losses, "
                                   "logits, gradients and updated weights step by step, in lockstep and free modes. "
                                   "Exit 0 agree, 1 diverge, 2 unusable trace or usage error.")
    c.add_argument("trace", metavar="TRACE", help="the port's trace: JSON lines (meta, init, one line per step), "
                                                  "optionally gzipped (.gz)")
    c.add_argument("--dtype", choices=["float64", "float32"], default=None,
                   help="torch_ref's dtype, and the tolerances: float32 for a float32 port (default: the trace's "
                        "meta.dtype, else float64)")
    c.add_argument("--device", default="cpu", help="torch_ref's device, e.g. cpu or cuda (default: cpu)")
    c.add_argument("--modes", default="lockstep,free", help="comma-separated: lockstep, free (default: both)")
    add_report_args(c)
    return p


# ---- what every command shares -----------------------------------------------------------------------------------

def output_plan(args, inputs):
    """The command's output files (--json, --plot, --details), checked before the work starts."""
    from .plot import plot_formats

    outputs = {"--json": getattr(args, "json", None), "--plot": getattr(args, "plot", None),
               "--details": getattr(args, "details", None)}
    suffixes = {"--plot": plot_formats()} if outputs["--plot"] else {}
    return OutputPlan(outputs, inputs=inputs, suffixes=suffixes).check()


def details_file(args):
    """--details FILE, written as the run goes and renamed into place at the end (removed if the run fails)."""
    return AtomicFile(args.details) if args.details else contextlib.nullcontext()


def step_progress(total, after=None):
    """on_step(step, checks) for `run` and `check`: per mode, the largest share of its tolerance any check of
    the step used (above 100% fails), and the failing checks so far; on stderr."""
    from .report import format_used

    progress = Progress(total, sys.stderr, lines=10, after=after)
    failing = [0]

    def on_step(step, checks):
        failing[0] += sum(not c.ok for c in checks)
        if progress.due(step):
            worst = {}
            for c in checks:
                worst[c.mode] = max(worst.get(c.mode, 0.0), c.ratio)
            used = " | ".join(f"{mode} worst {format_used(w)} of tol" for mode, w in worst.items())
            progress.update(step, f"parity step {step:4d} / {total} | {used} | failing checks {failing[0]}")
    on_step.close = progress.close
    return on_step


def finish(args, report, notes=()):
    """The table (unless --no-table), notes, --json, --plot, then the verdict line; the exit code."""
    from .report import write_json

    if not args.no_table:
        print(report.table())
    for note in notes:
        print(f"note: {note}")
    if args.json:
        write_json(report, args.json)
        print(f"report: {args.json}")
    if args.plot:
        from .plot import write_plot

        write_plot(report, args.plot)
        print(f"plot: {args.plot}")
    print(report.verdict_line())
    return EXIT_AGREE if report.verdict == "agree" else EXIT_DIVERGE


# ---- the commands ------------------------------------------------------------------------------------------------

def cmd_run(args):
    from torch_ref.train import resolve_device

    from .report import parse_modes
    from .run import RunConfig, load_run_docs, run_parity
    from .user_value import load_value, spec_file

    modes = parse_modes(args.modes)
    check_config(args)
    resolve_device(args.device)  # a clear error before any work
    value_cls, value_name = load_value(args.value)
    if args.value and args.engine == "fused":
        raise UsageError("--engine fused runs pure's own Value only; a --value class runs the plain engine "
                         "(drop --engine)")
    with output_plan(args, {"--data": args.data or os.environ.get(ENV_VAR), "--value": spec_file(args.value)}):
        docs, source = load_run_docs(args.data, warn=lambda text: print(text, file=sys.stderr))
        run = RunConfig(seed=args.seed, steps=args.steps, n_layer=args.n_layer, n_embd=args.n_embd,
                        n_head=args.n_head, block_size=args.block_size, lr=args.lr, samples=args.samples,
                        temperature=args.temperature, dtype=args.dtype, device=args.device, engine=args.engine)
        print(f"parity: pure ({args.engine or default_engine(value_cls)} engine) vs torch_ref ({args.dtype}, "
              f"{args.device}) on {source}: {len(docs)} docs, seed {run.seed}, {run.steps} steps, "
              f"modes {', '.join(modes)}")
        if args.value:
            print(f"pure runs with Value class {value_name}")
        sampling = (f"sampling {run.samples} names from pure and from torch_ref ({', '.join(modes)}), "
                    f"compared as strings ...") if run.samples else None
        progress = step_progress(run.steps, after=sampling)
        with details_file(args) as details:
            report = run_parity(docs, run, modes=modes, on_step=progress, value_cls=value_cls, keep_checks=False,
                                details=details)
        progress.close()
        report.data = source
        return finish(args, report)


def cmd_ops(args):
    from .ops import run_ops
    from .report import write_json_doc
    from .user_value import load_value, spec_file

    value_cls, value_name = load_value(args.value, for_ops=True)
    output_plan(args, {"--value": spec_file(args.value)})
    report = run_ops(value_cls, seed=args.seed)
    report.value_class = value_name
    print(f"parity ops: {value_name} vs torch.autograd (float64) and central finite differences, seed {args.seed}")
    print(report.table())
    for note in report.notes():
        print(f"note: {note}")
    if args.json:
        write_json_doc(report.to_json(), args.json)
        print(f"report: {args.json}")
    print(report.verdict_line())
    return EXIT_DIVERGE if report.verdict == "diverge" else EXIT_AGREE  # "partial": all it has is right


def cmd_mutants(args):
    from pure.corpus import make_corpus
    from pure.data import load_docs

    from .mutants import run_mutants, select
    from .report import write_json_doc

    mutants = select(args.only)
    output_plan(args, {"--data": args.data})
    docs = load_docs(args.data) if args.data else make_corpus()
    print(f"parity mutants: {len(mutants)} injected bugs and controls, each through ops and a short run", flush=True)
    report = run_mutants(docs, mutants, on_start=lambda i, n, m: print(f"[{i:2d}/{n}] {m.name}: {m.bug}",
                                                                        file=sys.stderr, flush=True))
    print(report.table())
    if args.json:
        write_json_doc(report.to_json(), args.json)
        print(f"report: {args.json}")
    print(report.summary())
    return EXIT_AGREE if report.ok else EXIT_DIVERGE


def cmd_check(args):
    from torch_ref.train import resolve_device

    from .check import check_trace
    from .porttrace import PortTrace
    from .report import parse_modes

    modes = parse_modes(args.modes)
    resolve_device(args.device)
    with output_plan(args, {"TRACE": args.trace}):
        print(f"parity check: {args.trace} vs torch_ref ({args.dtype or 'the trace dtype'}, {args.device}), "
              f"modes {', '.join(modes)}")
        print("reading the whole trace first, so that an unusable line is found before any work ...", file=sys.stderr)
        trace = PortTrace(args.trace)
        steps = sum(1 for _ in trace)  # raises TraceError (exit 2) naming the line
        c = trace.meta.config
        print(f"port: {trace.meta.implementation or 'unnamed'}; n_layer {c.n_layer}, n_embd {c.n_embd}, n_head "
              f"{c.n_head}, block_size {c.block_size}, vocab {c.vocab_size}; {steps} steps")
        progress = step_progress(steps)
        with details_file(args) as details:
            report = check_trace(args.trace, dtype=args.dtype, device=args.device, modes=modes, on_step=progress,
                                 keep_checks=False, details=details)
        progress.close()
        return finish(args, report, report.notes)


def need_torch():
    """parity compares against PyTorch: without it, say how to install it (the pinned CPU wheel) and stop."""
    for module in ("numpy", "torch"):
        try:
            __import__(module)
        except ImportError:
            raise UsageError(f"parity needs {module}, which is not installed here; run `make install`, or "
                             "`pip install torch==2.13.0 numpy matplotlib` then `pip install .`") from None


COMMANDS = {"run": cmd_run, "ops": cmd_ops, "mutants": cmd_mutants, "check": cmd_check}


def dispatch(args):
    need_torch()
    return COMMANDS[args.command](args)


def main(argv=None, prog="python -m parity"):
    line_buffered()
    return guarded(dispatch, build_parser(prog).parse_args(argv))


def console():
    """The `microgpt-parity` command (and `python -m parity`)."""
    sys.exit(main(prog=prog_name("python -m parity")))


if __name__ == "__main__":
    console()
