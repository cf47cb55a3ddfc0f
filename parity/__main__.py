"""`python -m parity run`: compare pure and torch_ref step by step; `ops`: check every rule of a Value class
against torch.autograd and finite differences; `mutants`: show that injected bugs are caught and localised.
Exit 0 agree, 1 diverge, 2 usage/input error."""

import contextlib
import os
import sys
import time

from pure.cli import (
    EXIT_DIVERGED,
    EXIT_OK,
    ArgumentParser,
    UsageError,
    add_model_args,
    add_sampling_args,
    add_version,
    guarded,
    line_buffered,
    non_negative_int,
    prog_name,
)
from pure.data import ENV_VAR, DataError, load_docs
from pure.outputs import AtomicFile, OutputPlan

from .report import format_table, format_used, plot_formats, write_json, write_json_doc, write_plot

EXIT_AGREE, EXIT_DIVERGE = EXIT_OK, EXIT_DIVERGED  # and 2 for usage or input errors (pure.cli.EXIT_USAGE)


class Progress:
    """One line per step on a terminal (redrawn in place), every ~10% otherwise; on stderr. It shows, per mode,
    the largest share of its tolerance any check of the step used (above 100% fails)."""

    def __init__(self, total, stream=sys.stderr, after=None):
        self.total, self.stream, self.t0 = total, stream, time.perf_counter()
        self.after = after  # what happens once the last step is done (e.g. sampling), announced then
        self.tty = stream.isatty()
        self.every = 1 if self.tty else max(1, total // 10)
        self.failing = 0

    def __call__(self, step, checks):
        self.failing += sum(not c.ok for c in checks)
        if self.tty or step % self.every == 0 or step == self.total:
            worst = {}
            for c in checks:
                worst[c.mode] = max(worst.get(c.mode, 0.0), c.ratio)
            used = " | ".join(f"{mode} worst {format_used(w)} of tol" for mode, w in worst.items())
            line = (f"parity step {step:4d} / {self.total} | {used} | failing checks {self.failing} | "
                    f"{time.perf_counter() - self.t0:5.1f}s")
            self.stream.write(line + ("\r" if self.tty else "\n"))
            self.stream.flush()
        if step == self.total and self.after:
            self.note(self.after)

    def note(self, text):
        """A stage between steps (e.g. sampling), on its own line."""
        self.close()
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self):
        if self.tty:
            self.stream.write("\n")
            self.tty = False  # nothing left to redraw


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
    add_model_args(r)  # the seed's defaults: 1000 steps (about 30 s with the fused engine)
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


VALUE_HELP = ("a Value class of your own, as module:Class or path/to/file.py:Class, following micrograd's protocol: "
              "Class(data), .data, .grad, + - * / (and reflected with numbers), ** constant, unary -, .exp(), "
              ".log(), .relu(), .backward()")


def load_value_arg(args, for_ops=False):
    """(class, its name) for --value, pure's Value when none was given; ValueError for a bad spec or class
    (for `run`, one that lacks an op the model needs; for `ops`, one that cannot be checked at all)."""
    if not getattr(args, "value", None):
        from pure.engine import Value

        return Value, "pure.engine:Value"
    from .engines import load_and_check

    return load_and_check(args.value, for_ops=for_ops), args.value


def load_run_docs(args):
    """The names data; when none was named and none can be found, the project's own synthetic corpus."""
    if args.data:
        return load_docs(args.data), args.data
    try:
        return load_docs(None), "names dataset (loader)"
    except DataError as e:
        from pure.corpus import make_corpus

        print(f"note: {e}", file=sys.stderr)
        print("note: using the built-in synthetic corpus (pure.corpus.make_corpus, 300 made-up words) instead; "
              "results are not the seed's", file=sys.stderr)
        return make_corpus(), "synthetic corpus (pure.corpus.make_corpus)"


def output_plan(args, inputs):
    """--json and --plot (and any other output flag of the command), checked before the work starts."""
    outputs = {"--json": getattr(args, "json", None), "--plot": getattr(args, "plot", None),
               "--details": getattr(args, "details", None)}
    suffixes = {"--plot": plot_formats()} if outputs["--plot"] else {}
    return OutputPlan(outputs, inputs=inputs, suffixes=suffixes).check()


def details_file(args):
    """--details FILE, written line by line beside the target and renamed into place at the end (removed if
    the run fails); a null context when not asked for."""
    return AtomicFile(args.details) if args.details else contextlib.nullcontext()


def parse_modes(text):
    modes = tuple(m.strip() for m in text.split(",") if m.strip())
    if not modes or any(m not in ("lockstep", "free") for m in modes):
        raise ValueError(f"--modes must be lockstep, free or both, got {text!r}")
    return tuple(m for m in ("lockstep", "free") if m in modes)  # one order everywhere: lockstep, then free


def value_file(args):
    """The .py file of --value path/to/file.py:Class, an input no output may overwrite."""
    where = (getattr(args, "value", None) or "").rpartition(":")[0]
    return where if where.endswith(".py") else None


def cmd_run(args):
    from pure.cli import check_config
    from torch_ref.train import resolve_device

    from .harness import RunConfig, run_parity
    from .quantities import step_quantities

    modes = parse_modes(args.modes)
    check_config(args)
    resolve_device(args.device)  # a clear error before any work
    value_cls, value_name = load_value_arg(args)
    if args.value and args.engine == "fused":
        raise UsageError("--engine fused runs pure's own Value only; a --value class runs the plain engine "
                         "(drop --engine)")
    with output_plan(args, {"--data": args.data or os.environ.get(ENV_VAR), "--value": value_file(args)}):
        docs, source = load_run_docs(args)
        run = RunConfig(seed=args.seed, steps=args.steps, n_layer=args.n_layer, n_embd=args.n_embd,
                        n_head=args.n_head, block_size=args.block_size, lr=args.lr, samples=args.samples,
                        temperature=args.temperature, dtype=args.dtype, device=args.device, engine=args.engine)
        engine = args.engine or ("plain" if args.value else "fused")
        print(f"parity: pure ({engine} engine) vs torch_ref ({args.dtype}, {args.device}) on {source}: "
              f"{len(docs)} docs, seed {run.seed}, {run.steps} steps, modes {', '.join(modes)}")
        if args.value:
            print(f"pure runs with Value class {value_name}")
        sampling = (f"sampling {run.samples} names from pure and from torch_ref ({', '.join(modes)}), "
                    f"compared as strings ...") if run.samples else None
        progress = Progress(run.steps, after=sampling)
        with details_file(args) as details:
            report = run_parity(docs, run, modes=modes, on_step=progress, value_cls=value_cls, keep_checks=False,
                                details=details)
        progress.close()
        report.data = source
        return print_report(args, report, step_quantities(report.model_config))


def print_report(args, report, quantities, notes=()):
    """The table (unless --no-table), notes, --json, --plot, then the verdict line; the exit code."""
    if not args.no_table:
        print(format_table(report, quantities))
    for note in notes:
        print(f"note: {note}")
    if args.json:
        write_json(report, args.json)
        print(f"report: {args.json}")
    if args.plot:
        write_plot(report, args.plot)
        print(f"plot: {args.plot}")
    print(report.verdict_line())
    return EXIT_AGREE if report.verdict == "agree" else EXIT_DIVERGE


def cmd_ops(args):
    from .ops import format_ops_table, run_ops

    value_cls, value_name = load_value_arg(args, for_ops=True)
    output_plan(args, {"--value": value_file(args)})
    report = run_ops(value_cls, seed=args.seed)
    report.value_class = value_name
    print(f"parity ops: {value_name} vs torch.autograd (float64) and central finite differences, seed {args.seed}")
    print(format_ops_table(report))
    failing = {r.op for r in report.failing}
    if failing & {"mul", "add"}:
        print("note: the outputs are weighted with * and + before backward, so a wrong mul or add rule also shows "
              "in the ops after it: fix the first failing op first")
    if args.json:
        write_json_doc(report.to_json(), args.json)
        print(f"report: {args.json}")
    print(report.verdict_line())
    return EXIT_DIVERGE if report.verdict == "diverge" else EXIT_AGREE  # "partial": all it has is right


def cmd_mutants(args):
    from pure.corpus import make_corpus

    from .mutants import catalogue, check_mutant, format_mutants_table

    mutants = catalogue()
    if args.only:
        wanted = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = sorted(set(wanted) - {m.name for m in mutants})
        if unknown:
            raise ValueError(f"unknown mutants: {', '.join(unknown)}; known: {', '.join(m.name for m in mutants)}")
        mutants = [m for m in mutants if m.name in wanted]
    output_plan(args, {"--data": args.data})
    docs = load_docs(args.data) if args.data else make_corpus()
    print(f"parity mutants: {len(mutants)} injected bugs and controls, each through ops and a short run", flush=True)
    results = []
    for i, mutant in enumerate(mutants, 1):
        print(f"[{i:2d}/{len(mutants)}] {mutant.name}: {mutant.bug}", file=sys.stderr, flush=True)
        results.append(check_mutant(mutant, docs))
    print(format_mutants_table(results))
    real = [r for r in results if not r.harmless]
    controls = [r for r in results if r.harmless]
    summary = (f"mutants: {sum(r.caught for r in real)}/{len(real)} caught, "
               f"{sum(r.localized for r in real)}/{len(real)} localised, "
               f"{sum(r.ok for r in controls)}/{len(controls)} harmless controls agree")
    if args.json:
        doc = {"verdict": "ok" if all(r.ok for r in results) else "fail", "summary": summary,
               "mutants": [r.to_json() for r in results]}
        write_json_doc(doc, args.json)
        print(f"report: {args.json}")
    print(summary)
    return EXIT_AGREE if all(r.ok for r in results) else EXIT_DIVERGE


def cmd_check(args):
    from torch_ref.train import resolve_device

    from .check import check_trace, port_quantities
    from .porttrace import PortTrace

    modes = parse_modes(args.modes)
    resolve_device(args.device)
    with output_plan(args, {"TRACE": args.trace}):
        print(f"parity check: {args.trace} vs torch_ref ({args.dtype or 'the trace dtype'}, {args.device}), "
              f"modes {', '.join(modes)}")
        print("reading the whole trace first, so that an unusable line is found before any work ...", file=sys.stderr)
        steps = sum(1 for _ in PortTrace(args.trace))  # raises TraceError (exit 2) naming the line
        meta = PortTrace(args.trace).meta
        c = meta.config
        print(f"port: {meta.implementation or 'unnamed'}; n_layer {c.n_layer}, n_embd {c.n_embd}, n_head "
              f"{c.n_head}, block_size {c.block_size}, vocab {c.vocab_size}; {steps} steps")
        progress = Progress(steps)
        with details_file(args) as details:
            report = check_trace(args.trace, dtype=args.dtype, device=args.device, modes=modes, on_step=progress,
                                 keep_checks=False, details=details)
        progress.close()
        return print_report(args, report, port_quantities(report.model_config), report.notes)


def need_torch():
    """parity compares against PyTorch: without it, say how to install it (the pinned CPU wheel) and stop."""
    for module in ("numpy", "torch"):
        try:
            __import__(module)
        except ImportError:
            raise UsageError(f"parity needs {module}, which is not installed here; run `make install`, or "
                             "`pip install torch==2.13.0 numpy matplotlib` then `pip install .`") from None


def dispatch(args):
    need_torch()
    return {"run": cmd_run, "ops": cmd_ops, "mutants": cmd_mutants, "check": cmd_check}[args.command](args)


def main(argv=None, prog="python -m parity"):
    line_buffered()
    return guarded(dispatch, build_parser(prog).parse_args(argv))


def console():
    """The `microgpt-parity` command (and `python -m parity`)."""
    sys.exit(main(prog=prog_name("python -m parity")))


if __name__ == "__main__":
    console()
