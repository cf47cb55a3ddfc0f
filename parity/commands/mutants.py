"""`parity mutants`: bugs of the catalogue (parity.diagnosis.bugs) injected into pure at run time, to prove the harness
catches, localises and names them.

Each mutant patches pure in memory (a method of Value or Adam, or a function of pure.model / pure.train) for the
length of one check, then restores it; no file is edited. For each, `parity ops` and a short `parity run` are run
against torch, and the mutant is
- caught when any check fails,
- localised when the run's first divergence is at the quantity the bug is in (and, for a rule of the engine,
  `ops` names the broken op first), and
- named when the diagnosis (parity.diagnosis, run once the bug is removed again) names it first.
Harmless controls (a mathematically equivalent change) must agree instead: they show the harness has no false
positives.
"""

from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence, Union

from parity.diagnosis.bugs import CONTROLS, by_id, injected  # noqa: F401 - CONTROLS: the harmless changes
from parity.errors import as_parity_errors
from parity.judge.formats import Case, ReportForms
from parity.ops.checks import run_ops
from parity.sources.pure_side import RunConfig

from .common import PathLike, plan_outputs, write_outputs
from .run import run_parity

# The short run each mutant is judged by: 3 steps (so bugs that only act from step 2 show), a small model.
# The bugs are injected into the plain teaching engine (pure.engine.Value, pure.model), so the run uses it.
MUTANT_RUN = RunConfig(steps=3, n_layer=1, n_embd=8, n_head=2, block_size=8, samples=3, engine="plain")


@dataclass
class Mutant:
    name: str
    bug_id: str  # the bug of parity.diagnosis.bugs it injects
    expect: tuple  # quantities the first divergence may be localised to (prefix match); () for controls
    expect_op: Optional[str] = None  # the op `parity ops` must name first, for rules of the engine
    harmless: bool = False  # a control: mathematically the same, must agree

    @property
    def bug(self):
        return by_id(self.bug_id)


def catalogue():
    return [
        Mutant("mul_grads_swapped", "mul-swapped", ("d:logits",), "mul"),
        Mutant("pow_exponent_off_by_one", "pow-off-by-one", ("d:logits",), "pow(2)"),
        Mutant("log_grad_inverse_square", "log-grad-inverse-square", ("d:logits",), "log"),
        Mutant("exp_grad_one", "exp-grad-one", ("d:logits",), "exp"),
        Mutant("relu_grad_at_negative", "relu-grad", ("d:layer0.mlp_pre",), "relu"),
        Mutant("add_drops_second_grad", "add-drops-second", ("d:logits",), "add"),
        Mutant("neg_grad_sign", "neg-grad-sign", ("d:logits",), "neg"),
        Mutant("grad_assigned_not_accumulated", "grad-assigned", ("d:logits",), "reuse"),
        Mutant("topological_order_breadth_first", "topological-order", ("d:",), "softmax"),
        Mutant("attention_unscaled", "attention-unscaled", ("layer0.head",)),
        Mutant("rmsnorm_eps_outside_sqrt", "rmsnorm-eps-outside-sqrt", ("embed_norm",)),
        Mutant("kv_cache_not_extended", "kv-cache-not-extended", ("layer0.head",)),
        Mutant("position_embedding_always_zero", "position-zero", ("embed",)),
        Mutant("adam_no_bias_correction", "adam-no-bias-correction", ("param:",)),
        Mutant("lr_decay_off_by_one", "lr-decay-off-by-one", ("param:",)),
        Mutant("grads_not_zeroed", "grads-not-zeroed", ("grad:",)),
        Mutant("control_softmax_max_backprops", "control-softmax-max-backprops", (), harmless=True),
        Mutant("control_other_topological_order", "control-other-topological-order", (), harmless=True),
    ]


@dataclass
class MutantResult:
    name: str
    bug: str
    harmless: bool
    caught: bool  # any check failed (ops or run)
    localized: bool  # the first divergence is where the bug is (controls: None means not applicable)
    ok: bool  # real bug: caught, localised and named; control: agrees everywhere
    caught_by: list = field(default_factory=list)  # "ops:<op>" and/or "run:<quantity>"
    first_divergence: Optional[dict] = None
    first_failing_op: Optional[str] = None
    verdict_line: str = ""
    expected: str = ""
    bug_id: str = ""
    diagnosis: Optional[dict] = None  # what the diagnosis named, the bug removed again
    named: bool = False  # the diagnosis named bug_id first

    def to_json(self):
        return dict(self.__dict__)


def check_mutant(mutant, docs, run=MUTANT_RUN):
    from parity.diagnosis.diagnose import diagnose
    from pure.model import GPTConfig

    bug = mutant.bug
    config = GPTConfig(n_layer=run.n_layer, n_embd=run.n_embd, n_head=run.n_head, block_size=run.block_size)
    with injected(bug.patches(config)):
        ops = run_ops()
        report = run_parity(docs, run)
    # named with pure as it is again: the replay must reproduce the mutant's numbers without it being injected
    diagnosis = diagnose(report.capture) if report.capture is not None else None
    fd = report.first_divergence
    failing_ops = [r.op for r in ops.failing]
    caught_by = [f"ops:{op}" for op in failing_ops[:3]] + ([f"run:{fd['quantity']}"] if fd else [])
    caught = bool(failing_ops) or fd is not None
    run_localized = fd is not None and any(fd["quantity"].startswith(e) for e in mutant.expect)
    ops_localized = mutant.expect_op is None or (failing_ops[:1] == [mutant.expect_op])
    localized = run_localized and ops_localized
    named = diagnosis is not None and diagnosis["id"] == mutant.bug_id
    expected = " or ".join(mutant.expect) + (f"; ops: {mutant.expect_op}" if mutant.expect_op else "")
    ok = (not caught) if mutant.harmless else (caught and localized and named)
    return MutantResult(mutant.name, bug.summary, mutant.harmless, caught, localized, ok, caught_by, fd,
                        failing_ops[0] if failing_ops else None, report.verdict_line,
                        "agree" if mutant.harmless else expected, mutant.bug_id, diagnosis, named)


def select(names=None):
    """The catalogue, or the mutants named (comma-separated, or a list); ValueError naming unknown ones."""
    mutants = catalogue()
    if not names:
        return mutants
    wanted = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)
    wanted = [n for n in wanted if n]
    unknown = sorted(set(wanted) - {m.name for m in mutants})
    if unknown:
        raise ValueError(f"unknown mutants: {', '.join(unknown)}; known: {', '.join(m.name for m in mutants)}")
    return [m for m in mutants if m.name in wanted]


@dataclass
class MutantsReport(ReportForms):
    """What `parity mutants` found: `results` (one MutantResult each), `ok` (every real bug caught, localised and
    named, every control agreeing), `verdict` ("ok" or "fail"), `verdict_line` (the counts)."""

    results: list
    title = "parity mutants"

    @property
    def ok(self):
        return all(r.ok for r in self.results)

    @property
    def verdict(self):
        return "ok" if self.ok else "fail"

    @property
    def verdict_line(self):
        return self.summary()

    @property
    def checks(self):
        return self.results

    def summary(self):
        real = [r for r in self.results if not r.harmless]
        controls = [r for r in self.results if r.harmless]
        return (f"mutants: {sum(r.caught for r in real)}/{len(real)} caught, "
                f"{sum(r.localized for r in real)}/{len(real)} localised, "
                f"{sum(r.named for r in real)}/{len(real)} named by the diagnosis, "
                f"{sum(r.ok for r in controls)}/{len(controls)} harmless controls agree")

    def to_dict(self):
        """The --json document."""
        return {"verdict": self.verdict, "summary": self.summary(), "mutants": [r.to_json() for r in self.results]}

    def table(self, width=100):
        return format_mutants_table(self.results, width)

    def cases(self):
        out = []
        for r in self.results:
            what = ("a harmless control diverged" if r.harmless else "not caught" if not r.caught
                    else "not localised" if not r.localized else "not named by the diagnosis")
            out.append(Case(r.name, r.ok, "" if r.ok else f"{r.name}: {what}: {r.verdict_line}",
                            f"expected {r.expected}; got {r.verdict_line}"))
        return out

    def failing_rows(self):
        lines = self.table().splitlines()
        bad = {r.name for r in self.results if not r.ok}
        rows = [line for line in lines[2:] if line.split(" ", 1)[0] in bad]
        return lines[:2] + rows if rows else []


def run_mutants(docs, mutants=None, on_start=None):
    """Each mutant (default: the whole catalogue) through ops and a short run; on_start(i, n, mutant) before each."""
    mutants = catalogue() if mutants is None else mutants
    results = []
    for i, mutant in enumerate(mutants, 1):
        if on_start:
            on_start(i, len(mutants), mutant)
        results.append(check_mutant(mutant, docs))
    return MutantsReport(results)


def format_mutants_table(results, width=100):
    """One row per mutant, at most `width` columns: caught?, localised?, the first op `ops` names as wrong, the
    run's first divergence (step, mode, quantity) and what the diagnosis named; the verdict lines are in the JSON."""
    name_width = max(len(r.name) for r in results) + 2
    head = (f"{'mutant':<{name_width}}{'caught':<7}{'local':<6}{'ops':<9}{'first divergence':<22}diagnosis")
    lines = [head, "-" * width]
    for r in results:
        caught = ("yes" if r.caught else "no") + ("" if r.ok else " !")
        loc = "-" if r.harmless else ("yes" if r.localized else "NO")
        op = r.first_failing_op or "-"
        fd = r.first_divergence
        where = f"{fd['step']} {fd['quantity']}" if fd else "agree"  # step, quantity (lockstep comes first)
        named = "-" if r.harmless else ((r.diagnosis or {}).get("id") or "none")
        row = f"{r.name:<{name_width}}{caught:<7}{loc:<6}{op[:8]:<9}{where[:21]:<22}{named}"
        lines.append(row if len(row) <= width else row[: width - 3] + "...")
    return "\n".join(lines)


__all__ = ["CONTROLS", "Mutant", "MutantResult", "MutantsReport", "catalogue", "check_mutant", "run_mutants",
           "select"]


def mutants(*, only: Union[str, Sequence[str], None] = None, data: Optional[PathLike] = None,
            json: Optional[PathLike] = None, junit: Optional[PathLike] = None, markdown: Optional[PathLike] = None,
            on_start: Optional[Callable] = None):
    """`parity mutants`: inject each bug of the catalogue into pure and show the harness catches and localises it.

    Returns a MutantsReport (`ok`: every bug caught and localised, every harmless control agreeing).

    >>> parity.mutants(only="exp_grad_one").ok  # doctest: +SKIP
    True
    """
    from pure.corpus import make_corpus
    from pure.data import load_docs

    with as_parity_errors():
        chosen = select(only)
        with plan_outputs({"--json": json, "--junit": junit, "--markdown": markdown}, {"--data": data}):
            docs = load_docs(data) if data else make_corpus()
            return write_outputs(run_mutants(docs, chosen, on_start=on_start), json, None, junit, markdown)
