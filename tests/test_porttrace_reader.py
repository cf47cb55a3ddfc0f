"""The forgiving port-trace reader: the non-finite tokens other languages print, hex floats, a step's tensors
on lines of their own, and errors that name the lines and the nearest parameter name."""

import json
import math
import struct
import sys

import pytest

from parity.commands.check import replay_trace
from parity.sources.porttrace import numbers
from parity.sources.porttrace.limits import TraceError
from parity.sources.porttrace.names import expected_order
from parity.sources.porttrace.reader import PortTrace
from pure.model import GPTConfig, param_shapes

CONFIG = dict(n_layer=1, n_embd=4, n_head=2, block_size=4)
META = {"meta": {**CONFIG, "chars": "abcfinty", "steps": 3}}
N = expected_order(GPTConfig(**CONFIG, vocab_size=9))[0]
ZEROS = json.dumps([0.0] * N)


def write(tmp_path, lines, name="t.jsonl"):
    path = tmp_path / name
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


def bits(x):
    return struct.pack("<d", x)


def steps(path):
    return list(PortTrace(path))


TOKENS = {  # what C (glibc, MSVC), Rust, Go, Java, JavaScript and Python print, any case
    "nan": "nan", "-nan": "nan", "NaN": "nan", "NAN": "nan", "nan(ind)": "nan", "-nan(ind)": "nan", "null": "nan",
    "inf": "inf", "-inf": "-inf", "+inf": "inf", "Inf": "inf", "+Inf": "inf", "-Inf": "-inf", "INF": "inf",
    "Infinity": "inf", "-Infinity": "-inf", "+Infinity": "inf", "infinity": "inf", "-INFINITY": "-inf",
}


@pytest.mark.parametrize("token", TOKENS)
def test_each_non_finite_token_is_read_where_it_stands(tmp_path, token):
    grads = "[" + ", ".join([token] + ["0.5"] * (N - 2) + [token]) + "]"
    path = write(tmp_path, [META, '{"init": [%s, %s]}' % (token, ZEROS[1:-1].split(", ", 1)[1]),
                            '{"step": 1, "doc": "cat", "loss": %s, "grads": %s}' % (token, grads)])
    trace = PortTrace(path)
    (s,) = list(trace)
    want = TOKENS[token]
    for x in (trace.init[0], s.loss, s.grads[0], s.grads[-1]):
        assert repr(x) == want
    assert s.grads[1] == 0.5


def test_strings_are_untouched_by_the_rewrite(tmp_path):
    meta = {"meta": {**META["meta"], "implementation": 'say "nan", inf\\ -Infinity: nancy'}}
    path = write(tmp_path, [json.dumps(meta), {"init": [0.0] * N},
                            '{"step": 1, "doc": "nancy", "loss": nan, "note": "inf \\"NaN\\" -inf"}',
                            '{"step": 2, "doc": "infinity", "loss": -inf}',
                            '{"step": 3, "doc": "nan", "loss": 1.5}'])
    trace = PortTrace(path)
    got = list(trace)
    assert trace.meta.implementation == 'say "nan", inf\\ -Infinity: nancy'
    chars = trace.meta.chars
    assert ["".join(chars[t] for t in s.tokens[1:-1]) for s in got] == ["nancy", "infinity", "nan"]
    assert [repr(s.loss) for s in got] == ["nan", "-inf", "1.5"]


def test_a_normal_line_takes_the_fast_path(tmp_path, monkeypatch):
    class Refuse:
        def sub(self, *a):
            raise AssertionError("the rewrite ran on a line json.loads accepts")

    monkeypatch.setattr(numbers, "_LENIENT", Refuse())
    path = write(tmp_path, [META, {"init": [0.0] * N}, '{"step": 1, "doc": "nan", "loss": NaN, "x": null}',
                            '{"step": 2, "doc": "inf", "loss": -Infinity}'])
    assert [repr(s.loss) for s in PortTrace(path)] == ["nan", "-inf"]


@pytest.mark.parametrize("line", ['{"step": 1, "doc": "cat", "loss": nanx}', '{"step": 1, "doc": "cat", "loss": in}',
                                  '{"step": 1, "doc": "cat", "loss": 1.5,}'])
def test_what_is_still_not_json_is_the_not_json_error(tmp_path, line):
    path = write(tmp_path, [META, {"init": [0.0] * N}, line])
    with pytest.raises(TraceError, match="line 3: not JSON"):
        steps(path)


HEX = {"0x1.91eb851eb851fp+1": 3.14, "-0x0p+0": -0.0, "0x1p-1074": 5e-324, "-0x1.8p+1": -3.0, "0x1.0p0": 1.0,
       "0x0.0000000000001p-1022": 5e-324, "0X1.FFFFFFFFFFFFFP+1023": 1.7976931348623157e308,
       "0x1.99999ap-4": float.fromhex("0x1.99999ap-4")}  # a float32's 0.1, as C prints it with %a


def test_hex_floats_are_read_exactly_wherever_a_number_goes(tmp_path):
    init = list(HEX) + [0.0] * (N - len(HEX))
    grads = ["-0x1.8p+1"] * N
    path = write(tmp_path, [{"meta": {**META["meta"], "lr": "0x1.47ae147ae147bp-7"}}, {"init": init},
                            {"step": 1, "doc": "cat", "loss": "0x1.62e42fefa39efp-1", "grads": grads},
                            '{"step": 2, "doc": "cat", "loss": 0x1.8p+1, "params": [%s]}' %
                            ", ".join(["-0x1p-3"] + ["0x0p+0"] * (N - 1))])
    trace = PortTrace(path)
    s1, s2 = list(trace)
    assert [bits(x) for x in trace.init[:len(HEX)]] == [bits(x) for x in HEX.values()]
    assert trace.meta.adam.lr == 0.01 and s1.loss == math.log(2) and s1.grads == [-3.0] * N
    assert s2.loss == 3.0 and s2.params[0] == -0.125 and bits(s2.params[1]) == bits(0.0)


@pytest.mark.parametrize("value", ['"1.5"', '"nan"', '"0x"', '"0x1p"', '"abc"', "true"])
def test_other_strings_where_a_number_belongs_stay_an_error(tmp_path, value):
    path = write(tmp_path, [META, {"init": [0.0] * N}, '{"step": 1, "doc": "cat", "loss": %s}' % value])
    with pytest.raises(TraceError, match="line 3, loss: expected a number"):
        steps(path)


def test_an_object_form_key_with_a_typo_names_the_nearest_key(tmp_path):
    config = GPTConfig(**CONFIG, vocab_size=9)
    obj = {name: [[0.0] * c for _ in range(r)] for name, (r, c) in param_shapes(config).items()}
    obj["layer0.attn_q"] = obj.pop("layer0.attn_wq")
    path = write(tmp_path, [META, {"init": obj}])
    with pytest.raises(TraceError) as e:
        PortTrace(path)
    msg = str(e.value)
    assert "line 2, init: unknown key 'layer0.attn_q' (did you mean 'layer0.attn_wq'?)" in msg
    assert "wte, wpe, lm_head, layer0.attn_wq, layer0.attn_wk" in msg and "\n" not in msg
    obj["layer0.attn_wq"] = obj.pop("layer0.attn_q")
    del obj["lm_head"]
    with pytest.raises(TraceError, match="missing key 'lm_head'; the keys are wte, wpe, lm_head"):
        PortTrace(write(tmp_path, [META, {"init": obj}]))


# --- a step's tensors on lines of their own ---

@pytest.fixture(scope="module")
def pure_trace(tmp_path_factory):
    """A trace pure writes: 5 steps, gradients and weights on the first 3."""
    import pure.__main__ as pm
    from pure.cli import main as pure_main
    from pure.corpus import write_corpus

    tmp = tmp_path_factory.mktemp("pure")
    path = tmp / "pure.jsonl"
    assert pure_main(["train", "--data", str(write_corpus(tmp / "corpus.txt")), "--steps", "5", "--samples", "1",
                      "--n-embd", "8", "--n-head", "2", "--block-size", "8", "--trace", str(path),
                      "--trace-tensors", "3"], prog="pure", backend=pm.BACKEND) == 0
    return path


def split(path, order):
    """Each step line as one line per field group, in `order` (of "grads", "step", "params")."""
    out = []
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        if "step" not in rec or "grads" not in rec:
            out.append(line)
            continue
        parts = {"grads": {"step": rec["step"], "grads": rec.pop("grads")},
                 "params": {"step": rec["step"], "params": rec.pop("params")}, "step": rec}
        out += [json.dumps(parts[k]) for k in order] + ["a port's own print between the lines"]
    return out


def same_steps(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert (x.step, x.tokens, bits(x.loss), x.grads, x.params, x.logits) == \
               (y.step, y.tokens, bits(y.loss), y.grads, y.params, y.logits)


@pytest.mark.parametrize("order", [("grads", "step", "params"), ("params", "grads", "step"),
                                   ("step", "params", "grads")])
def test_split_lines_are_merged_into_their_step(tmp_path, pure_trace, order):
    path = write(tmp_path, split(pure_trace, order))
    same_steps(steps(path), steps(pure_trace))
    assert [s.line for s in steps(path)][:4] == [3, 7, 11, 15]  # a step's first line


def test_parity_check_agrees_on_the_split_trace_as_on_the_whole_one(tmp_path, pure_trace):
    whole = replay_trace(pure_trace)
    parts = replay_trace(write(tmp_path, split(pure_trace, ("grads", "step", "params"))))
    assert whole.verdict == parts.verdict == "agree", parts.verdict_line
    assert parts.tally.count == whole.tally.count > 0
    assert {c.quantity for c in parts.checks} == {c.quantity for c in whole.checks}


def test_logits_on_their_own_line_are_checked_against_the_merged_tokens(tmp_path):
    rows = [[0.0] * 9] * 3  # "cat": BOS c a t BOS, 4 positions, but block_size 4 and 4 targets -> 4 rows
    path = write(tmp_path, [META, {"init": [0.0] * N}, {"step": 1, "logits": rows},
                            {"step": 1, "doc": "cat", "loss": 1.0}])
    with pytest.raises(TraceError, match="line 3: logits must be 4 rows"):
        steps(path)
    path = write(tmp_path, [META, {"init": [0.0] * N}, {"step": 1, "logits": [[0.0] * 9] * 4},
                            {"step": 1, "doc": "cat", "loss": 1.0}])
    assert len(steps(path)[0].logits) == 4


def test_the_same_field_twice_for_a_step_names_both_lines(tmp_path):
    path = write(tmp_path, [META, {"init": [0.0] * N}, {"step": 1, "grads": [0.0] * N},
                            {"step": 1, "doc": "cat", "loss": 1.0}, "port print", {"step": 1, "grads": [1.0] * N}])
    with pytest.raises(TraceError) as e:
        steps(path)
    assert "line 6: step 1 gives grads again (first on line 3)" in str(e.value)
    path = write(tmp_path, [META, {"init": [0.0] * N}, {"step": 1, "doc": "cat", "loss": 1.0},
                            {"step": 1, "tokens": [8, 0, 8], "loss": 2.0}])
    with pytest.raises(TraceError, match="line 4: step 1 gives doc/docs/tokens again .first on line 3."):
        steps(path)


def test_a_step_without_a_loss_names_its_first_line(tmp_path):
    path = write(tmp_path, [META, {"init": [0.0] * N}, {"step": 1, "grads": [0.0] * N},
                            {"step": 1, "doc": "cat", "params": [0.0] * N}, {"step": 2, "doc": "cat", "loss": 1.0}])
    with pytest.raises(TraceError, match="line 3: step 1 has no loss .its lines give grads, doc, params."):
        steps(path)
    path = write(tmp_path, [META, {"init": [0.0] * N}, {"step": 1, "loss": 1.0}])
    with pytest.raises(TraceError, match="line 3: a step needs doc"):
        steps(path)


@pytest.mark.parametrize("records,words", [
    ([{"step": 1, "doc": "a", "loss": 1.0}, {"step": 2, "grads": [0.0] * N}, {"step": 1, "params": [0.0] * N}],
     "line 5: step 1 where step 3 was expected (steps out of order"),
    ([{"step": 1, "doc": "a", "loss": 1.0}, {"step": 3, "grads": [0.0] * N}], "line 4: step 3 where step 2 was "
                                                                              "expected (steps missing"),
    ([{"step": True, "doc": "a", "loss": 1.0}], "line 3: step True where step 1 was expected"),
    ([{"step": 1, "doc": "a", "loss": 1.0}, {"step": 2, "grads": [0.0] * 3, "doc": "a", "loss": 1.0}],
     f"line 4, grads: 3 numbers, but the config needs {N}"),
])
def test_step_numbering_rules_stay(tmp_path, records, words):
    path = write(tmp_path, [META, {"init": [0.0] * N}, *records])
    with pytest.raises(TraceError) as e:
        steps(path)
    assert words in str(e.value)


SPOOL_IN_BACKGROUND = """
import pickle, sys
from parity.sources.porttrace import PortTrace, TraceError
spool = PortTrace(sys.argv[1]).spool(background=True)
assert spool._child is not None or not sys.platform.startswith("linux"), "no torch, no thread: it must fork"
try:
    print(pickle.dumps([(s.step, s.tokens, s.loss, None if s.grads is None else list(s.grads)) for s in spool]).hex())
except TraceError as e:
    print("TraceError", e)
"""


def test_a_trace_read_in_the_background_is_the_same_and_fails_the_same(tmp_path):
    # parity check reads the trace in a forked process while it imports torch; the steps, and the error naming a
    # bad line, must be what the reader gives in this process
    import pickle
    import subprocess
    import sys

    step = {"step": 1, "doc": "cat", "loss": 2.5, "grads": [0.5] * N, "params": [0.0] * N}
    good = write(tmp_path, [META, {"init": [0.0] * N}, step, {**step, "step": 2, "loss": float("nan")}])
    bad = write(tmp_path, [META, {"init": [0.0] * N}, step, '{"step": 2, "doc": "cat", "loss": oops}'], "bad.jsonl")

    def background(path):
        out = subprocess.run([sys.executable, "-c", SPOOL_IN_BACKGROUND, str(path)], capture_output=True, text=True,
                             check=True).stdout.strip()
        return out if out.startswith("TraceError") else pickle.loads(bytes.fromhex(out))

    here = [(s.step, s.tokens, s.loss, None if s.grads is None else list(s.grads)) for s in PortTrace(good).spool()]
    there = background(good)
    assert [x[:2] + x[3:] for x in there] == [x[:2] + x[3:] for x in here]
    assert there[0][2] == 2.5 and math.isnan(there[1][2])
    with pytest.raises(TraceError) as e:
        list(PortTrace(bad).spool())
    assert background(bad) == f"TraceError {e.value}"


READER_FAILS = """
import sys
from parity.sources.porttrace import PortTrace, TraceError, spool as spooling

def broken(trace, spool):
    raise MemoryError("no memory left for the spool")

spooling._write_spool = broken  # the forked reader runs it
spool = PortTrace(sys.argv[1]).spool(background=True)
assert spool._child is not None or not sys.platform.startswith("linux"), "no torch, no thread: it must fork"
try:
    len(spool)
except RuntimeError as e:
    print("RuntimeError", e)
except TraceError as e:
    print("TraceError", e)
spool.close()
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the reader forks on Linux only")
def test_a_reader_that_fails_is_the_judges_failure_not_the_traces(tmp_path):
    """The forked reader's own failure (not a bad line) comes back as a RuntimeError: never a TraceError that would
    blame the port's trace, and never a count."""
    import subprocess
    import sys

    path = write(tmp_path, [META, {"init": [0.0] * N}, {"step": 1, "doc": "cat", "loss": 2.5}])
    out = subprocess.run([sys.executable, "-c", READER_FAILS, str(path)], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "RuntimeError the process reading the trace failed: MemoryError: no memory left for the spool"


# --- named matrices (issue 29): one matrix a line, under its name (or the port's own), merged into init or a step ---

def named(path, order=lambda names: names, rename=None):
    """The trace with init and every step's grads and params as one line per matrix, {"init": {name: rows}} and
    {"step": k, "grads": {name: rows}}, in order(names); rename: the port's name for a seed name."""
    rename = rename or {}
    out, shapes = [], None
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        if "meta" in rec:
            m = rec["meta"]
            shapes = param_shapes(GPTConfig(**{k: m[k] for k in CONFIG}, vocab_size=len(m["chars"]) + 1,
                                            tie_embeddings=m.get("variant", {}).get("tie_embeddings", False)))
        fields = [f for f in ("init", "grads", "params") if isinstance(rec.get(f), list)]
        if not fields:
            out.append(line)
            continue
        for field in fields:  # grads, then the step's own line, then params
            flat, at, mats = rec.pop(field), 0, {}
            for name, (r, c) in shapes.items():
                mats[name] = [flat[at + i * c:at + (i + 1) * c] for i in range(r)]
                at += r * c
            if field == "params":
                out.append(json.dumps(rec))
            for name in order(list(shapes)):
                head = {} if field == "init" else {"step": rec["step"]}
                out.append(json.dumps({**head, field: {rename.get(name, name): mats[name]}}))
    return out


def reverse(names):
    return names[::-1]


@pytest.mark.parametrize("order", [reverse, lambda names: sorted(names), lambda names: names[1::2] + names[::2]])
def test_named_matrices_on_lines_of_their_own_are_merged_in_the_seeds_order(tmp_path, pure_trace, order):
    path = write(tmp_path, named(pure_trace, order))
    whole = PortTrace(pure_trace)
    trace = PortTrace(path)
    assert [bits(x) for x in trace.init] == [bits(x) for x in whole.init]
    same_steps(list(trace), list(whole))
    assert sum('"grads": {' in line for line in path.read_text().splitlines()) == 3 * 9  # 3 steps x 9 matrices


def test_parity_check_agrees_on_the_named_trace_as_on_the_flat_one(tmp_path, pure_trace):
    whole = replay_trace(pure_trace)
    parts = replay_trace(write(tmp_path, named(pure_trace, reverse)))
    assert whole.verdict == parts.verdict == "agree", parts.verdict_line
    assert parts.tally.count == whole.tally.count


def _lines(tmp_path, pure_trace, edit):
    lines = named(pure_trace)
    edit(lines)
    return write(tmp_path, lines)


def _find(lines, start):
    return next(i for i, line in enumerate(lines) if line.startswith(start))


def error(path, names=None):
    with pytest.raises(TraceError) as e:
        list(PortTrace(path, names=names))
    assert "\n" not in str(e.value)
    return str(e.value)


def test_a_matrix_given_twice_in_a_step_names_both_lines_and_the_matrix(tmp_path, pure_trace):
    def twice(lines):
        i = _find(lines, '{"step": 2, "grads": {"wpe"')
        lines.insert(_find(lines, '{"step": 2, "loss"'), lines[i])
    msg = error(_lines(tmp_path, pure_trace, twice))
    # meta 1, init 2-10, step 1: grads 11-19, step 20, params 21-29; step 2's grads from 30: wpe on 31, again on 39
    assert msg.endswith("line 39: step 2 grads gives wpe again (first on line 31); each matrix comes once per step")


def test_a_matrix_missing_when_the_next_step_starts_names_the_lines_and_the_matrix(tmp_path, pure_trace):
    def drop(lines):
        del lines[_find(lines, '{"step": 1, "params": {"layer0.mlp_fc1"')]
    msg = error(_lines(tmp_path, pure_trace, drop))
    assert ": lines 21, 22, 23, 24, 25, 26, 27, 28, step 1 params: missing key 'layer0.mlp_fc1'; the keys are wte, " \
           "wpe, lm_head, layer0.attn_wq" in msg
    assert msg.endswith("every matrix of a step comes before step 2's lines")


def test_flat_and_named_in_one_step_is_the_field_twice(tmp_path, pure_trace):
    def flat(lines):
        n = len(PortTrace(pure_trace).init)
        lines.insert(_find(lines, '{"step": 1, "loss"'), json.dumps({"step": 1, "grads": [0.0] * n}))
    assert "line 20: step 1 gives grads again (first on line 11)" in error(_lines(tmp_path, pure_trace, flat))


def test_init_merges_its_named_lines_and_names_what_is_missing_or_given_twice(tmp_path, pure_trace):
    def missing(lines):
        del lines[2]  # wpe
    msg = error(_lines(tmp_path, pure_trace, missing))
    assert ": lines 2, 3, 4, 5, 6, 7, 8, 9, init: missing key 'wpe'; the keys are wte, wpe" in msg
    assert msg.endswith("every matrix of init comes before the first step (line 10)")

    def early(lines):  # every matrix but one, then the trace ends
        del lines[9:]
    assert error(_lines(tmp_path, pure_trace, early)).endswith("the trace ended before every matrix of init")

    def again(lines):  # once init is complete: the same matrix again, before the first step
        lines.insert(10, lines[3])
    assert error(_lines(tmp_path, pure_trace, again)).endswith(
        "line 11: init gives lm_head again (first on line 4); each matrix comes once")

    def after_flat(lines):
        lines[1:10] = [json.dumps({"init": [0.0] * len(PortTrace(pure_trace).init)}), lines[1]]
    assert error(_lines(tmp_path, pure_trace, after_flat)).endswith(
        "line 3: init gives wte again (first on line 2); each matrix comes once")

    def flat_after_named(lines):
        lines[2:10] = [json.dumps({"init": [0.0] * len(PortTrace(pure_trace).init)})]
    assert "line 3: init gives a flat list after named matrices (line 2, init)" in error(
        _lines(tmp_path, pure_trace, flat_after_named))


def test_a_named_matrix_of_the_wrong_shape_or_name_is_its_own_lines_error(tmp_path, pure_trace):
    def shape(lines):
        lines[_find(lines, '{"step": 1, "grads": {"wpe"')] = json.dumps({"step": 1, "grads": {"wpe": [[0.0] * 8]}})
    assert "line 12, grads: wpe must be 8 rows of 8 numbers" in error(_lines(tmp_path, pure_trace, shape))

    def typo(lines):
        lines[_find(lines, '{"step": 1, "grads": {"wpe"')] = json.dumps({"step": 1, "grads": {"wpee": [[0.0] * 8]}})
    msg = error(_lines(tmp_path, pure_trace, typo))
    assert "line 12, grads: unknown key 'wpee' (did you mean 'wpe'?); the keys are wte, wpe, lm_head" in msg


@pytest.fixture(scope="module")
def tied_trace(tmp_path_factory):
    """pure's trace of a run with tied embeddings (a declared variant): no lm_head among the parameters."""
    import pure.__main__ as pm
    from pure.cli import main as pure_main
    from pure.corpus import write_corpus

    tmp = tmp_path_factory.mktemp("tied")
    path = tmp / "tied.jsonl"
    assert pure_main(["train", "--data", str(write_corpus(tmp / "corpus.txt")), "--steps", "2", "--samples", "0",
                      "--n-embd", "8", "--n-head", "2", "--block-size", "8", "--trace", str(path),
                      "--trace-tensors", "2", "--variant", "tie_embeddings=true"], prog="pure",
                     backend=pm.BACKEND) == 0
    return path


def test_tied_embeddings_expect_no_lm_head(tmp_path, tied_trace):
    lines = named(tied_trace, reverse)
    assert not any('"lm_head"' in line for line in lines)
    same_steps(steps(write(tmp_path, lines)), steps(tied_trace))
    report = replay_trace(write(tmp_path, lines))
    assert report.verdict == "agree", report.verdict_line
    lines.insert(2, json.dumps({"init": {"lm_head": [[0.0] * 8] * 27}}))
    msg = error(write(tmp_path, lines))
    assert "line 3, init: unknown key 'lm_head' (tied embeddings: lm_head is wte, so there is no lm_head); the keys " \
           "are wte, wpe, layer0.attn_wq" in msg


PORT_NAMES = {"wte": "tok_emb", "wpe": "pos_emb", "lm_head": "head", "layer0.attn_wq": "layers.0.attn.wq",
              "layer0.mlp_fc1": "layers.0.mlp.up"}


def _meta_names(lines, names):
    meta = json.loads(lines[0])
    meta["meta"]["names"] = names
    lines[0] = json.dumps(meta)
    return lines


def test_the_ports_own_names_from_meta_or_a_names_file(tmp_path, pure_trace):
    to_seed = {port: seed for seed, port in PORT_NAMES.items()}
    lines = named(pure_trace, reverse, PORT_NAMES)
    assert any(line.startswith('{"init": {"tok_emb": ') for line in lines)
    in_meta = write(tmp_path, _meta_names(lines[:], to_seed), "meta.jsonl")
    same_steps(steps(in_meta), steps(pure_trace))
    plain = write(tmp_path, lines, "plain.jsonl")
    assert "unknown key 'layers.0.mlp.up'" in error(plain)
    names_file = tmp_path / "names.json"
    names_file.write_text(json.dumps(to_seed))
    same_steps(list(PortTrace(plain, names=names_file)), steps(pure_trace))  # a --names file
    same_steps(list(PortTrace(plain, names=to_seed)), steps(pure_trace))  # or its object
    # the file's entry wins over meta's for the same port name
    wrong = write(tmp_path, _meta_names(lines[:], {**to_seed, "tok_emb": "wpe", "pos_emb": "wte"}), "wrong.jsonl")
    same_steps(list(PortTrace(wrong, names={"tok_emb": "wte", "pos_emb": "wpe"})), steps(pure_trace))
    report = replay_trace(in_meta)
    assert report.verdict == "agree", report.verdict_line


def test_parity_check_names_flag(tmp_path, pure_trace, capsys):
    from parity.__main__ import main

    path = write(tmp_path, named(pure_trace, sorted, PORT_NAMES))
    names_file = tmp_path / "names.json"
    names_file.write_text(json.dumps({port: seed for seed, port in PORT_NAMES.items()}))
    assert main(["check", str(path), "--names", str(names_file), "--no-table"]) == 0
    assert "verdict: agree" in capsys.readouterr().out
    assert main(["check", str(path), "--no-table"]) == 2
    assert "unknown key 'layers.0.attn.wq' (did you mean 'layer0.attn_wq'?)" in capsys.readouterr().err


@pytest.mark.parametrize("names,words", [
    ({"tok_emb": "wtee"}, "'tok_emb' is named as 'wtee', which is no parameter (did you mean 'wte'?); the names are "
                          "wte, wpe, lm_head, layer0.attn_wq"),
    ({"tok_emb": "wte", "embedding": "wte"}, "both 'tok_emb' and 'embedding' are named as 'wte'; each parameter has "
                                             "one name; the names are wte, wpe"),
    ({"tok_emb": 3}, "the names must be an object of strings"),
    (["wte"], "the names must be an object of strings"),
])
def test_a_bad_name_map_is_one_error_listing_the_names(tmp_path, pure_trace, names, words):
    lines = named(pure_trace, reverse)
    msg = error(write(tmp_path, _meta_names(lines[:], names)))
    assert ": line 1, meta.names: " + words in msg
    if isinstance(names, dict):
        msg = error(write(tmp_path, lines), names=names)
        assert msg.startswith("--names: " + words)


def test_a_names_file_that_is_not_an_object_of_names(tmp_path, pure_trace):
    path = write(tmp_path, named(pure_trace))
    bad = tmp_path / "names.json"
    bad.write_text("{not json")
    assert error(path, names=bad).startswith(f"names file {bad}: not JSON")
    bad.write_text('["wte"]')
    assert error(path, names=bad).startswith(f"names file {bad}: expected a JSON object")
    assert error(path, names=tmp_path / "none.json").startswith(f"cannot read names file {tmp_path / 'none.json'}")
    bad.write_text('{"tok_emb": "wtf"}')
    assert error(path, names=bad).startswith(f"names file {bad}: 'tok_emb' is named as 'wtf', which is no parameter")


def test_with_a_name_map_the_errors_list_the_ports_names(tmp_path, pure_trace):
    lines = named(pure_trace, reverse, PORT_NAMES)
    del lines[_find(lines, '{"init": {"tok_emb"')]
    to_seed = {port: seed for seed, port in PORT_NAMES.items()}
    msg = error(write(tmp_path, lines), names=to_seed)
    assert "init: missing key 'tok_emb'; the keys are tok_emb (wte), pos_emb (wpe), head (lm_head), " \
           "layers.0.attn.wq (layer0.attn_wq), layer0.attn_wk" in msg
