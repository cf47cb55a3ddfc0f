"""`python -m parity run`: compare pure and torch_ref step by step; `ops`: check every rule of a Value class
against torch.autograd and finite differences; `mutants`: show that injected bugs are caught and localised;
`check`: judge a port in any language from the trace it writes; `grade`: a folder of submissions; `writer`: a
trace writer for a port; `diagnoses`: the bugs a divergence can be named as. Exit 0 agree, 1 diverge, 2 usage or
input error, 3 the judge's own failure (never the code's divergence)."""

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
    positive_int,
    prog_name,
)
from pure.progress import Progress

from .sources.user_value import PROTOCOL

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
    p.add_argument("--no-diagnosis", action="store_true",
                   help="on a divergence, do not replay the diverging step under the known bugs to name the bug")


def build_parser(prog="python -m parity"):
    p = ArgumentParser(prog=prog, description=__doc__)
    add_version(p, prog)
    sub = p.add_subparsers(dest="command", required=True,
                           metavar="{run,ops,mutants,check,grade,writer,diagnoses}", parser_class=ArgumentParser)
    r = sub.add_parser("run", help="train pure and torch_ref side by side and compare every step",
                       description="Train pure and torch_ref from the same seed and compare logits, loss, gradients, "
                                   "Adam moments and updated weights at every step, in lockstep and free modes. "
                                   "Exit 0 agree, 1 diverge, 2 usage or input error, 3 the judge's own failure.")
    add_model_args(r)  # the seed's defaults: 1000 steps
    add_sampling_args(r)  # the samples after training are compared as strings
    r.add_argument("--dtype", default="float64", choices=["float64", "float32"],
                   help="torch_ref's dtype; pure is float64 (default: float64)")
    r.add_argument("--device", default="cpu", help="torch_ref's device, e.g. cpu or cuda (default: cpu)")
    r.add_argument("--modes", default="lockstep,free",
                   help="comma-separated: lockstep (reset torch to pure before every step), free (independent "
                        "trajectories) (default: both)")
    add_report_args(r)
    add_ci_args(r)
    add_limit_args(r)
    r.add_argument("--value", metavar="SPEC", help=VALUE_HELP + " (default: pure's own Value)")
    r.add_argument("--engine", choices=["fused", "plain"], default=None,
                   help="pure's engine: fused (one node per sum, the default for pure's own Value) or plain "
                        "(pure.engine.Value, one node per op; always used for --value); bit for bit the same")
    o = sub.add_parser("ops", help="check every op and composite of a Value class against torch and finite "
                                   "differences",
                       description="For every operation of the Value protocol (add, sub, mul, div, neg, pow with "
                                   "exponents 2, 3, 0.5, -0.5, -1, exp, log, relu, forms with numbers, reused nodes, "
                                   "a graph with shared nodes at two depths), every composite of the model (softmax, "
                                   "rmsnorm, linear, attention head, cross-entropy) and the optional extras (tanh, "
                                   "sigmoid, erf, gelu, gelu_tanh, silu, the variants' activations), on a table of "
                                   "inputs with edge cases: compare forward values and gradients with torch.autograd "
                                   "(float64) and central finite differences, each rule on its own (rows built on a "
                                   "wrong rule read 'not checked'), and end with a diagnosis: the wrong rule, the "
                                   "input, what it got, and the fix. Statuses: ok, FAIL, not checked, absent (the "
                                   "model needs it), n/a (optional), limit. Exit 0 all ok, 1 any rule wrong, "
                                   "2 usage error.")
    o.add_argument("--value", metavar="SPEC", help=VALUE_HELP + " (default: pure's own Value)")
    o.add_argument("--json", metavar="FILE", help='write {"verdict": ..., "ops": [{"op", "ok", ...}]} as JSON')
    o.add_argument("--seed", type=non_negative_int, default=0, help="seed of the upstream gradients (default: 0)")
    add_ci_args(o)
    add_limit_args(o)
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
    add_ci_args(m)
    c = sub.add_parser("check", help="check a port in any language from the trace it writes",
                       description="Replay a microgpt port's run in torch_ref from the port's own initial weights and "
                                   "documents (the port-trace format: see the README), and compare its losses, "
                                   "logits, gradients and updated weights step by step, in lockstep and free modes. "
                                   "Exit 0 agree, 1 diverge, 2 unusable trace or usage error, 3 the judge's own "
                                   "failure.")
    c.add_argument("trace", metavar="TRACE", help="the port's trace: JSON lines (meta, init, one line per step), "
                                                  "optionally gzipped (.gz)")
    c.add_argument("--dtype", choices=["float64", "float32"], default=None,
                   help="torch_ref's dtype, and the tolerances: float32 for a float32 port (default: the trace's "
                        "meta.dtype, else float64)")
    c.add_argument("--device", default="cpu", help="torch_ref's device, e.g. cpu or cuda (default: cpu)")
    c.add_argument("--modes", default="lockstep,free", help="comma-separated: lockstep, free (default: both)")
    c.add_argument("--strict", action="store_true",
                   help="require microgpt itself: a declared variant (meta.variant) is a divergence too (default: a "
                        "declared variant is checked as declared)")
    c.add_argument("--names", metavar="FILE",
                   help='the port\'s names for its matrices, a JSON object {"tok_emb": "wte", "layers.0.attn.wq": '
                        '"layer0.attn_wq", ...} (over meta.names; default: the seed\'s names)')
    add_report_args(c)
    add_ci_args(c)
    add_trace_limit_args(c)
    g = sub.add_parser("grade", help="judge a folder of submissions (Value classes and port traces), each in a "
                                     "process of its own",
                       description="Every *.py in DIR is a Value-class submission, checked by ops and a short run; "
                                   "every *.jsonl / *.jsonl.gz a port trace, checked by check. Each runs in a judge "
                                   "process of its own (a class's code in a worker of its own), JOBS at a time, "
                                   "within the limits. The terms are the grader's (the seed's config and "
                                   "hyper-parameters, or --config FILE): a trace whose meta differs is not "
                                   "comparable, and one without gradients and weights is partial; neither passes. "
                                   "Exit 0 when every submission agrees, 1 otherwise, 2 usage error.")
    g.add_argument("folder", metavar="DIR", help="the folder of the submissions")
    g.add_argument("--jobs", type=positive_int, default=2, help="submissions judged at a time (default: 2)")
    g.add_argument("--timeout", type=float, default=300.0, metavar="SECONDS",
                   help="each submission's job (a class: ops, then the run) (default: 300)")
    g.add_argument("--max-memory", type=int, default=4096, metavar="MB",
                   help="a class's worker's address space; a trace's config's estimated replay (default: 4096)")
    g.add_argument("--steps", type=positive_int, default=None, help="a class's short run (default: the terms', 5)")
    g.add_argument("--class", dest="class_name", default="Value", metavar="NAME",
                   help="the class a .py submission defines (default: Value)")
    g.add_argument("--config", metavar="FILE", help="the grade's terms as JSON (n_layer, n_embd, n_head, block_size, "
                                                    "lr, beta1, beta2, eps, dtype, seed, steps; default: the seed's)")
    g.add_argument("--data", metavar="PATH", help="documents for a class's run (default: the loader's order, else "
                                                  "the synthetic corpus)")
    g.add_argument("--json", metavar="FILE", help='write {"submissions": [...], "summary": {...}} as JSON')
    add_ci_args(g)
    w = sub.add_parser("writer", help="write a dependency-free trace writer for a port in C/C++, JS/TS, Rust, Java, "
                                      "Go or Python",
                       description="Write the port-trace writer for LANG into DIR: one file (two for JavaScript: the "
                                   "module and its TypeScript types) to copy into a port; each opens with a usage "
                                   "example. See the README's porting guide. Exit 0 written, 2 usage error.")
    w.add_argument("lang", metavar="LANG", help="c (also for C++: cpp), js (also for TypeScript), rust, java, go or "
                                                "python")
    w.add_argument("-o", "--out", metavar="DIR", default=".", help="folder to write into (default: here)")
    w.add_argument("--force", action="store_true", help="overwrite a file of the same name with other contents")
    sub.add_parser("diagnoses", help="list the known bugs a divergence is replayed under (id, phase, summary)",
                   description="List the catalogue of known bugs: when `check` or `run` finds a divergence, it "
                               "replays the diverging step under those of its phase and names the one that "
                               "reproduces the port's own numbers.")
    return p


# ---- what every command shares -----------------------------------------------------------------------------------

def add_limit_args(p):
    """The limits of the worker that runs code under test (parity.worker)."""
    from .commands.common import MAX_MEMORY, TIMEOUT

    p.add_argument("--timeout", metavar="SECONDS", type=float, default=TIMEOUT,
                   help=f"the whole job's wall time; past it the worker is killed and the verdict is diverge "
                        f"(default: {TIMEOUT:g})")
    p.add_argument("--max-memory", metavar="MB", type=int, default=MAX_MEMORY,
                   help=f"the worker's address space in MB (default: {MAX_MEMORY})")


def add_trace_limit_args(p):
    """What a trace may ask of the judge (parity.sources.porttrace.Limits): each checked as the trace is read."""
    from .sources.porttrace.limits import Limits

    d = Limits()
    p.add_argument("--max-line-mb", type=float, default=d.max_line_mb, metavar="MB",
                   help=f"the longest line read (default: {d.max_line_mb:g})")
    p.add_argument("--max-trace-mb", type=float, default=d.max_trace_mb, metavar="MB",
                   help=f"the whole trace, decompressed (default: {d.max_trace_mb:g})")
    p.add_argument("--max-steps", type=int, default=d.max_steps, metavar="N", help=f"steps (default: {d.max_steps})")
    p.add_argument("--max-params", type=int, default=d.max_params, metavar="N",
                   help=f"the config's parameters (default: {d.max_params})")
    p.add_argument("--max-memory", type=float, default=d.max_memory_mb, metavar="MB",
                   help=f"what replaying the config may allocate, estimated from its sizes before anything is "
                        f"allocated (default: {d.max_memory_mb:g})")


def trace_limits(args):
    from .sources.porttrace.limits import Limits

    return Limits(args.max_line_mb, args.max_trace_mb, args.max_steps, args.max_params, args.max_memory)


def add_ci_args(p):
    """The CI outputs, shared by every command."""
    p.add_argument("--junit", metavar="FILE", help="write JUnit XML (one test case per quantity family and mode, op "
                                                   "or mutant; a failure's message is the verdict line), for CI pages")
    p.add_argument("--markdown", metavar="FILE", help="write a short Markdown summary (verdict, failing rows, "
                                                      "diagnosis), e.g. for $GITHUB_STEP_SUMMARY")


def step_progress(after=None):
    """progress(total) -> on_step(step, checks) for `run` and `check`: per mode, the largest share of its tolerance
    any check of the step used (above 100% fails), and the failing checks so far; on stderr."""
    from .judge.report import format_used

    def start(total):
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
    return start


def finish(args, report, notes=()):
    """What a command prints after its work: the table (unless --no-table), notes, the files written, then the
    verdict line."""
    if not getattr(args, "no_table", False):
        print(report.table())
    output = getattr(report, "worker_output", "").strip()
    if output:  # what the code under test printed: its own words, never the judge's
        print("output of the Value class (its own, trimmed):")
        print("\n".join(f"  | {line}" for line in output.splitlines()[-20:]))
    for note in notes:
        print(f"note: {note}")
    for what, path in getattr(report, "written", []):
        print(f"{what}: {path}")
    print(report.verdict_line)
    if getattr(report, "diagnosis", None):
        from .judge.formats import diagnosis_line

        print(diagnosis_line(report.diagnosis))


def shown_modes(text):
    """'free,lockstep' -> 'lockstep, free' (as the run will take them); the text itself if it is not valid (the
    command then says why)."""
    from .judge.report import parse_modes

    try:
        return ", ".join(parse_modes(text))
    except ValueError:
        return text


def outputs(args):
    return dict(json=args.json, junit=args.junit, markdown=args.markdown)


# ---- the commands ------------------------------------------------------------------------------------------------

def cmd_run(args):
    from . import api

    variant = check_config(args)  # the flags alone, before the data is read
    sampling = (f"sampling {args.samples} names from pure and from torch_ref ({shown_modes(args.modes)}), compared "
                f"as strings ..." if args.samples else None)
    report = api.run(args.data, seed=args.seed, steps=args.steps, n_layer=args.n_layer, n_embd=args.n_embd,
                     n_head=args.n_head, block_size=args.block_size, lr=variant.lr,
                     variant={k: v for k, v in variant.deviations().items() if k != "lr"}, samples=args.samples,
                     temperature=args.temperature, dtype=args.dtype, device=args.device, modes=args.modes,
                     engine=args.engine, value=args.value, plot=args.plot, details=args.details, **outputs(args),
                     diagnose=not args.no_diagnosis, timeout=args.timeout, max_memory=args.max_memory,
                     progress=step_progress(after=sampling),
                     log=lambda text: print(text, file=sys.stderr) if text.startswith(("note:", "diagnosing"))
                     else print(text))
    finish(args, report)
    return EXIT_DIVERGE if report.verdict == "diverge" else EXIT_AGREE


def cmd_ops(args):
    from . import api

    report = api.check_ops(args.value, seed=args.seed, timeout=args.timeout, max_memory=args.max_memory,
                           **outputs(args))
    print(f"parity ops: {report.value_class} vs torch.autograd (float64) and central finite differences, "
          f"seed {args.seed}")
    finish(args, report, report.notes)
    return EXIT_DIVERGE if report.verdict == "diverge" else EXIT_AGREE  # "partial": all it has is right


def cmd_mutants(args):
    from . import api
    from .commands.mutants import select

    n = len(select(args.only))
    print(f"parity mutants: {n} injected bugs and controls, each through ops and a short run", flush=True)
    report = api.mutants(only=args.only, data=args.data, **outputs(args),
                         on_start=lambda i, n, m: print(f"[{i:2d}/{n}] {m.name}: {m.bug}", file=sys.stderr,
                                                        flush=True))
    finish(args, report)
    return EXIT_AGREE if report.ok else EXIT_DIVERGE


def cmd_check(args):
    from . import api

    print(f"parity check: {args.trace} vs torch_ref on {args.device}, modes {shown_modes(args.modes)}")
    report = api.check_trace(args.trace, dtype=args.dtype, device=args.device, modes=args.modes, plot=args.plot,
                             details=args.details, **outputs(args), diagnose=not args.no_diagnosis,
                             limits=trace_limits(args), strict=args.strict, names=args.names,
                             progress=step_progress(), log=lambda text: print(text, file=sys.stderr)
                             if text.startswith(("reading", "diagnosing")) else print(text))
    finish(args, report, report.notes)
    return EXIT_DIVERGE if report.verdict == "diverge" else EXIT_AGREE  # "partial": what was checked agrees


def cmd_grade(args):
    from pure.outputs import OutputPlan

    from .commands.grade import grade, load_terms, submissions

    terms = load_terms(args.config)
    if args.steps:
        terms["steps"] = args.steps
    if args.class_name and not args.class_name.isidentifier():
        raise UsageError(f"--class {args.class_name!r} is not a class name")
    items = submissions(args.folder)
    with OutputPlan({"--json": args.json, "--junit": args.junit, "--markdown": args.markdown},
                    inputs={"--config": args.config, "--data": args.data}).check():
        print(f"parity grade: {len(items)} submissions in {args.folder}, {args.jobs} at a time; terms: "
              + ", ".join(f"{k} {v}" for k, v in terms.items()))
        done = [0]

        def on_done(row):
            done[0] += 1
            print(f"[{done[0]:3d}/{len(items)}] {row['name']}: {row['verdict']} ({row.get('seconds', 0):.1f}s)",
                  file=sys.stderr, flush=True)

        report = grade(args.folder, jobs=args.jobs, timeout=args.timeout, max_memory=args.max_memory, terms=terms,
                       class_name=args.class_name, data=args.data, on_done=on_done)
        print(report.table())
        for what, path in (("report", args.json), ("junit", args.junit), ("markdown", args.markdown)):
            if path:
                {"report": report.to_json, "junit": report.to_junit, "markdown": report.to_markdown}[what](path)
                print(f"{what}: {path}")
        print(report.verdict_line)
    return EXIT_AGREE if report.ok else EXIT_DIVERGE


def cmd_writer(args):
    from .writers import write_writer

    for path in write_writer(args.lang, args.out, force=args.force):
        print(path)
    return EXIT_AGREE


def cmd_diagnoses(args):
    from .diagnosis.diagnose import catalogue_table

    print(catalogue_table())
    return EXIT_AGREE


INSTALL = "run `make install`, or `pip install torch==2.13.0 numpy matplotlib` then `pip install .`"


def need_torch():
    """parity compares against PyTorch: without it, say how to install it (the pinned CPU wheel) and stop. Found,
    not imported: importing torch takes about a second, which `parity check` spends reading the trace meanwhile
    (a process forked before torch is imported); one that is found but fails to import is `broken_dependency`."""
    from importlib.util import find_spec

    for module in ("numpy", "torch"):
        if find_spec(module) is None:
            raise UsageError(f"parity needs {module}, which is not installed here; {INSTALL}")


def broken_dependency(error):
    """The name of numpy or torch when `error` (an ImportError) was raised inside it: installed, but broken."""
    import traceback
    from importlib.util import find_spec

    files = [frame.filename for frame in traceback.extract_tb(error.__traceback__)]
    for module in ("numpy", "torch"):
        spec = find_spec(module)
        folders = list(spec.submodule_search_locations or []) if spec else []
        if error.name == module or any(f.startswith(tuple(folders)) for f in files if folders):
            return module
    return None


COMMANDS = {"run": cmd_run, "ops": cmd_ops, "mutants": cmd_mutants, "check": cmd_check, "grade": cmd_grade,
            "writer": cmd_writer,
            "diagnoses": cmd_diagnoses}


def dispatch(args):
    if args.command != "writer":  # writing a writer needs neither torch nor numpy
        need_torch()
    try:
        return COMMANDS[args.command](args)
    except ImportError as e:
        module = broken_dependency(e)
        if module is None:
            raise
        raise UsageError(f"{module} is installed but cannot be imported ({e}); reinstall it: {INSTALL}") from None


def command_first(argv):
    """`parity --value X ops` -> `parity ops --value X`: options written before the command are the command's."""
    for i, arg in enumerate(argv):
        if arg in COMMANDS:
            if i and not {"-h", "--help", "--version"} & set(argv[:i]):
                return [arg, *argv[:i], *argv[i + 1:]]
            break
    return argv


def main(argv=None, prog="python -m parity"):
    line_buffered()
    argv = command_first(list(sys.argv[1:] if argv is None else argv))
    return guarded(dispatch, build_parser(prog).parse_args(argv))


def console():
    """The `microgpt-parity` command (and `python -m parity`)."""
    sys.exit(main(prog=prog_name("python -m parity")))


if __name__ == "__main__":
    console()
