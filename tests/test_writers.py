"""The port-trace writers of parity/writers, compiled and run for real in each language whose toolchain is here.

A driver per language (tests/writer_drivers) cannot be a microgpt; it re-emits a trace that pure (float64) or
torch_ref (float32) wrote, given to it as plain text (one item a line), through the writer: meta, init, then per
step a grads line (streamed number by number), the step line, a params line, and logits on step 1. What the
reader gets back must be the same numbers bit for bit, and `parity check` must judge the copy as it judges the
original; a NaN loss and infinite numbers must come out as tokens the reader takes, and be a divergence.
"""

import json
import math
import os
import random
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from parity.commands.check import replay_trace
from parity.sources.porttrace.reader import PortTrace
from parity.writers import LANGS, write_writer, writer_files
from pure.corpus import write_corpus
from pure.model import param_shapes
from torch_ref.train import TorchTrainer

DRIVERS = Path(__file__).resolve().parent / "writer_drivers"
TINY = ["--n-embd", "8", "--n-head", "2", "--block-size", "8", "--samples", "0"]
IMPLEMENTATION = 'driver "{lang}" \\ tab\t nl\n ctl\x01 é ✓'  # what each driver passes to meta: escaping checked


def run(cmd, cwd, timeout=120):
    r = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                       env={**os.environ, "GOCACHE": str(Path(cwd) / "gocache"), "GOPATH": str(Path(cwd) / "gopath"),
                            "GO111MODULE": "off", "GOFLAGS": ""})
    assert r.returncode == 0, f"{' '.join(map(str, cmd))} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    return r


# lang: (tools it needs, build commands, run command); in the folder holding the writer and the driver
TOOLCHAINS = {
    "c": (["gcc"], [["gcc", "-std=c99", "-Wall", "-Wextra", "-pedantic", "-Werror", "-O1", "-o", "driver",
                     "driver.c"]], ["./driver"]),
    "js": (["node"], [], ["node", "driver.mjs"]),
    "rust": (["rustc"], [["rustc", "--edition", "2021", "-D", "warnings", "-o", "driver", "driver.rs"]], ["./driver"]),
    "java": (["javac", "java"], [["javac", "-encoding", "UTF-8", "-Xlint:all", "-Werror", "-d", "classes",
                                  "MicrogptTrace.java", "Driver.java"]], ["java", "-cp", "classes", "Driver"]),
    "go": (["go"], [["go", "vet", "driver.go", "microgpt_trace.go"],
                    ["go", "build", "-o", "driver", "driver.go", "microgpt_trace.go"]], ["./driver"]),
    "python": ([], [], [sys.executable, "driver.py"]),  # this Python, with numpy (the drivers' arrays)
}
DRIVER_FILES = {"c": "driver.c", "js": "driver.mjs", "rust": "driver.rs", "java": "Driver.java", "go": "driver.go",
                "python": "driver.py"}


def test_every_language_has_a_toolchain_entry_and_short_commented_files():
    assert set(TOOLCHAINS) == set(LANGS) == set(DRIVER_FILES)
    for lang in LANGS:
        for name, text in writer_files(lang):
            if name.endswith(".d.mts"):
                continue
            head = "\n".join(text.splitlines()[:20])
            assert "python -m parity check" in head and ("step + 1" in head or "step+1" in head), (lang, name)
            assert len(text.splitlines()) <= 200, (name, len(text.splitlines()))  # Go: gofmt


def test_write_writer_refuses_a_different_file_unless_forced(tmp_path):
    out = tmp_path / "new" / "folder"
    (path,) = write_writer("c", out)
    assert path == out / "microgpt_trace.h" and path.read_text() == writer_files("c")[0][1]
    assert write_writer("c", out) == [path]  # the same contents again: fine
    path.write_text("// my own edits\n")
    with pytest.raises(ValueError, match="microgpt_trace.h exists and differs .* pass --force") as e:
        write_writer("c", out)
    assert "\n" not in str(e.value) and path.read_text() == "// my own edits\n"
    assert write_writer("c", out, force=True) == [path] and path.read_text() == writer_files("c")[0][1]
    assert sorted(p.name for p in out.iterdir()) == ["microgpt_trace.h"]  # no temporary file left
    assert [p.name for p in write_writer("js", out)] == ["microgpt_trace.mjs", "microgpt_trace.d.mts"]
    with pytest.raises(ValueError, match="no trace writer for 'cobol'"):
        write_writer("cobol", out)


# --- the reference traces and the drivers' input ---

@pytest.fixture(scope="module")
def ref_counts(refs):
    """{dtype: the number of checks `parity check` makes of the reference trace}, replayed once for every copy."""
    return {dtype: replay_trace(path).tally.count for dtype, path in refs.items()}


@pytest.fixture(scope="module")
def refs(tmp_path_factory):
    """{dtype: trace path}: pure (float64) and torch_ref (float32), 4 steps, gradients and weights on 3."""
    import pure.__main__ as pm
    from pure.cli import main as cli_main
    from torch_ref.__main__ import BACKEND

    tmp = tmp_path_factory.mktemp("refs")
    corpus = write_corpus(tmp / "corpus.txt")
    common = ["train", "--data", str(corpus), "--steps", "4", *TINY, "--trace-tensors", "3"]
    assert cli_main([*common, "--trace", str(tmp / "f64.jsonl")], prog="pure", backend=pm.BACKEND) == 0
    assert cli_main([*common, "--dtype", "float32", "--trace", str(tmp / "f32.jsonl")], prog="torch_ref",
                    backend=BACKEND) == 0
    return {"float64": tmp / "f64.jsonl", "float32": tmp / "f32.jsonl"}


def load(path):
    trace = PortTrace(path)
    return trace, list(trace)


def fmt(x):
    return "NaN" if x != x else ("Infinity" if x > 0 else "-Infinity") if math.isinf(x) else repr(float(x))


def driver_input(trace, steps, dtype):
    """The whole trace as plain text, one item a line, in the order the drivers read it."""
    m, c = trace.meta, trace.meta.config
    out = [dtype, c.n_layer, c.n_embd, c.n_head, c.block_size, m.steps, m.chars,
           *map(fmt, (m.adam.lr, m.adam.beta1, m.adam.beta2, m.adam.eps)), len(trace.init), *map(fmt, trace.init),
           len(steps)]
    for s in steps:
        out += ["".join(m.chars[t] for t in s.tokens[1:-1]), fmt(s.loss)]
        for values in (s.grads, s.params):
            out += [len(values or []), *map(fmt, values or [])]
        rows = s.logits or []
        out += [len(rows)] + ([len(rows[0]), *(fmt(x) for r in rows for x in r)] if rows else [])
    return "".join(f"{x}\n" for x in out)


def bits(values, dtype="float64"):
    return np.asarray(values, dtype=np.float64).astype(dtype).tobytes()


def same(original, copy, dtype="float64"):
    """The copy's meta and every number equal the original's, bit for bit at `dtype`."""
    (t0, s0), (t1, s1) = original, copy
    assert (t1.meta.config, t1.meta.chars, t1.meta.adam, t1.meta.steps) == \
           (t0.meta.config, t0.meta.chars, t0.meta.adam, t0.meta.steps)
    assert t1.meta.dtype == dtype and t1.meta.extra["format"] == 1
    assert bits(t1.init, dtype) == bits(t0.init, dtype)
    assert len(s1) == len(s0)
    for a, b in zip(s0, s1):
        assert (b.step, b.tokens) == (a.step, a.tokens)
        assert bits([b.loss], dtype) == bits([a.loss], dtype), (a.step, a.loss, b.loss)
        for key in ("grads", "params", "logits"):
            x, y = getattr(a, key), getattr(b, key)
            assert (x is None) == (y is None), (a.step, key)
            if x is not None:
                assert bits(y, dtype) == bits(x, dtype), (a.step, key)


def build(lang, tmp_path_factory, toolchain=None, driver_file=None):
    """(lang, a function running the driver on an input text, returning the trace it wrote): one build per call;
    skipped, with the reason, when the language's toolchain is missing."""
    tools, builds, command = toolchain or TOOLCHAINS[lang]
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"the {lang} writer is not tested here: {', '.join(missing)} not found on PATH (install the "
                    f"{lang} toolchain to test it{', e.g. apt-get install golang-go' if lang == 'go' else ''})")
    work = tmp_path_factory.mktemp(lang)
    write_writer(lang, work)
    shutil.copy(DRIVERS / (driver_file or DRIVER_FILES[lang]), work)
    for build_command in builds:
        run(build_command, work, timeout=300)
    count = iter(range(1000))

    def emit(text, to_stdout=False):
        i = next(count)
        (work / f"in{i}.txt").write_text(text, encoding="utf-8")
        out = work / f"out{i}.jsonl"
        if to_stdout:
            r = run([*command, f"in{i}.txt", "-"], work)
            out.write_text(r.stdout, encoding="utf-8")
        else:
            run([*command, f"in{i}.txt", out.name], work)
        return out

    return lang, emit


@pytest.fixture(scope="module", params=list(LANGS))
def driver(request, tmp_path_factory):
    """(lang, a function running the driver on an input text, returning the trace it wrote): one build per run."""
    return build(request.param, tmp_path_factory)


def test_parity_writer_command(tmp_path, capsys):
    from parity.__main__ import main

    assert main(["writer", "js", "-o", str(tmp_path / "w")]) == 0
    assert capsys.readouterr().out.split() == [str(tmp_path / "w" / n) for n in LANGS["js"]]
    assert main(["writer", "typescript", "-o", str(tmp_path / "w")]) == 0  # the same files again: fine
    (tmp_path / "w" / "microgpt_trace.mjs").write_text("// mine\n")
    assert main(["writer", "js", "-o", str(tmp_path / "w")]) == 2
    assert capsys.readouterr().err.strip().endswith("differs from the js trace writer; pass --force to overwrite it")
    assert main(["writer", "cobol"]) == 2
    assert "no trace writer for 'cobol'; there is one for c, js, rust, java, go, python" in capsys.readouterr().err
    assert main(["writer", "cpp", "-o", str(tmp_path / "cpp")]) == 0  # C++: the C header
    assert main(["writer", "py", "-o", str(tmp_path / "py")]) == 0
    assert sorted(p.name for p in (tmp_path / "cpp").iterdir()) == ["microgpt_trace.h"]
    assert sorted(p.name for p in (tmp_path / "py").iterdir()) == ["microgpt_trace.py"]


def test_float64_every_number_bit_for_bit_and_check_agrees(driver, refs, ref_counts, tmp_path):
    lang, emit = driver
    trace, steps = load(refs["float64"])
    replay = TorchTrainer.from_params(trace.meta.config, trace.init, steps=trace.meta.steps, adam=trace.meta.adam)
    logits = replay.forward_backward(steps[0].tokens)[1].detach().numpy().tolist()
    steps[0].logits = logits  # the true logits of step 1, so the logits call is checked too
    path = emit(driver_input(trace, steps, "float64"))
    copy = load(path)
    assert copy[0].meta.implementation == IMPLEMENTATION.format(lang=lang)
    same((trace, steps), copy)
    text = path.read_text()
    lines = text.splitlines()
    assert lines[2].startswith('{"step": 1, "grads": [') and lines[3].startswith('{"step": 1, "doc": ')
    assert lines[4].startswith('{"step": 1, "params": [') and lines[5].startswith('{"step": 1, "logits": [[')
    for line in lines:
        json.loads(line, parse_constant=pytest.fail)  # strict JSON: no NaN or Infinity in a clean trace
    report = replay_trace(path)
    assert report.verdict == "agree", report.verdict_line
    assert report.tally.count == ref_counts["float64"] + 1  # the same checks, and step 1's logits


def test_float32_reads_back_as_the_same_float32_and_check_agrees(driver, refs):
    lang, emit = driver
    trace, steps = load(refs["float32"])
    path = emit(driver_input(trace, steps, "float32"))
    copy = load(path)
    same((trace, steps), copy, dtype="float32")
    assert copy[0].meta.dtype == "float32"
    report = replay_trace(path)
    assert report.dtype == "float32" and report.verdict == "agree", report.verdict_line


def test_nan_and_inf_are_tokens_the_reader_takes_and_a_divergence_at_their_step(driver, refs):
    lang, emit = driver
    trace, steps = load(refs["float64"])
    steps[1].loss = math.nan
    steps[1].grads[5] = math.inf
    steps[2].params[7] = -math.inf
    path = emit(driver_input(trace, steps, "float64"))
    text = path.read_text()
    assert '"loss": NaN}' in text and ", Infinity, " in text and ", -Infinity, " in text
    _, got = load(path)
    assert math.isnan(got[1].loss) and got[1].grads[5] == math.inf and got[2].params[7] == -math.inf
    report = replay_trace(path)
    fd = report.first_divergence
    assert report.verdict == "diverge" and fd["step"] == 2 and fd["nonfinite"]["side"] == "ref", fd


EDGES = [-0.0, 0.0, 5e-324, -2.2250738585072014e-308, 1.7976931348623157e308, 0.1, 1 / 3, 1e21, 1e-7, 1.0, -3.0,
         123456789012345680.0, 2.0**-1022 * 1.5, 9007199254740993.0, 1e16, 1e23, 2e-3, 4.35e-5]
EDGES32 = [float(np.float32(x)) for x in [-0.0, 1.4e-45, 3.4028234663852886e38, 0.1, 1 / 3, 1e-7, 16777217.0,
                                          1e10, 2e-3, 1.17549435e-38, 7.038531e-26]]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_edge_values_and_standard_output(driver, refs, dtype):
    """Signed zero, subnormals, the largest finite numbers, whole numbers, exponents: exact, also via stdout."""
    lang, emit = driver
    trace, steps = load(refs[dtype])
    edges = EDGES if dtype == "float64" else EDGES32
    trace.init[:len(edges)] = edges
    steps[0].loss = edges[-1]
    path = emit(driver_input(trace, steps[:1], dtype), to_stdout=True)
    copy = load(path)
    assert bits(copy[0].init[:len(edges)], dtype) == bits(edges, dtype)
    same((trace, steps[:1]), copy, dtype=dtype)
    if dtype == "float64":
        assert struct.pack("<d", copy[0].init[0]) == struct.pack("<d", -0.0)


# --- declared variants (issue 28): facts and meta.variant in meta, steps with lr and over several documents ---

VARIANT_FILES = {"c": "variant.c", "js": "variant.mjs", "rust": "variant.rs", "java": "Variant.java",
                 "go": "variant.go", "python": "variant.py"}


def variant_toolchain(lang, files=VARIANT_FILES, stem="variant"):
    """TOOLCHAINS[lang] with another driver (files[lang], built as `stem`) in place of the driver."""
    rename = {"driver": stem, "./driver": f"./{stem}", "Driver": stem.capitalize(),
              **{DRIVER_FILES[x]: files[x] for x in LANGS}}
    tools, builds, command = TOOLCHAINS[lang]
    return tools, [[rename.get(a, a) for a in b] for b in builds], [rename.get(a, a) for a in command]


ADAM = {"lr": 0.01, "beta1": 0.9, "beta2": 0.95, "eps": 1e-8}  # meta's own facts: beta1 0.9, as the variant says
FACTS = [("number", "weight_decay", 0.1), ("number", "grad_clip", 1.5), ("number", "norm_eps", 1e-6),
         ("int", "bos", 0), ("int", "eos", 27)]
VARIANT = [("string", "activation", "relu2"), ("string", "lr_schedule", "cosine"), ("number", "beta1", 0.9),
           ("number", "beta2", 0.95), ("number", "lr", 0.01 * 2 / 3), ("number", "eps", 1e-10),
           ("bool", "tie_embeddings", False), ("int", "docs_per_step", 2), ("number", "weight_decay", 0.1),
           ("number", "grad_clip", 1.5), ("number", "norm_eps", 1e-6), ("string", "loss_reduction", "doc_mean"),
           ("bool", "x_flag", True), ("string", "x_note", 'say "hi" \\ é ✓')]  # any key; strings escaped
STEPS = [("doc_lr", ["emma"], 3.2958368660043291, 0.01),
         ("docs_lr", ["olivia", 'a "q" \\ é ✓'], 2.9999999999999996, 0.009999999776482582),
         ("doc", ["ava"], 2.5, None),
         ("docs_lr", ["x", "y", "z"], 1 / 3, 0.01 / 3)]
INIT = [0.5, -0.25, 1 / 3]
CHARS = "abcdefghijklmnopqrstuvwxyz"


def variant_input(facts, variant, steps, init=INIT):
    """The variant drivers' input, one item a line: meta's arguments, the facts and the variant's keys (kind, key,
    value), init, then each step (form; the document, or the count and the documents; the loss; the lr)."""
    def value(kind, v):
        return {"bool": lambda: str(v).lower(), "int": lambda: str(v), "number": lambda: fmt(v)}.get(kind, lambda: v)()

    out = ["float64", 1, 8, 2, 8, len(steps), CHARS, *map(fmt, ADAM.values())]
    for declared in (facts, variant):
        out += [len(declared)] + [x for kind, key, v in declared for x in (kind, key, value(kind, v))]
    out += [len(init), *map(fmt, init), len(steps)]
    for form, docs, loss, lr in steps:
        out += [form, *([len(docs), *docs] if form == "docs_lr" else docs), fmt(loss)]
        out += [] if lr is None else [fmt(lr)]
    return "".join(f"{x}\n" for x in out)


def expected_lines(lang, facts, variant, steps, init=INIT):
    meta = {"format": 1, "implementation": f'variant "{lang}"', "n_layer": 1, "n_embd": 8, "n_head": 2,
            "block_size": 8, "chars": CHARS, "steps": len(steps), **ADAM, "dtype": "float64",
            **{key: v for _, key, v in facts}}
    if variant:
        meta["variant"] = {key: v for _, key, v in variant}
    lines = [{"meta": meta}, {"init": init}]
    for k, (form, docs, loss, lr) in enumerate(steps, 1):
        line = {"step": k, **({"docs": docs} if form == "docs_lr" else {"doc": docs[0]}), "loss": loss}
        lines.append(line if lr is None else {**line, "lr": lr})
    return lines


def typed(x):
    """x with every key's order and every value's type made part of its value: 1 != 1.0 != True here."""
    if isinstance(x, dict):
        return [(key, typed(v)) for key, v in x.items()]
    if isinstance(x, list):
        return [typed(v) for v in x]
    return type(x).__name__, x


def read_json_lines(path):
    return [json.loads(line, parse_constant=pytest.fail) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module", params=list(LANGS))
def variant_driver(request, tmp_path_factory):
    lang = request.param
    return build(lang, tmp_path_factory, variant_toolchain(lang), VARIANT_FILES[lang])


def test_declared_variant_and_facts_are_written_as_declared(variant_driver):
    """Every fact and variant key in the order declared, each of its own JSON type (a bool a bool, an int an int, a
    float the same float), and steps with the lr their update used, over one document or several."""
    lang, emit = variant_driver
    got = read_json_lines(emit(variant_input(FACTS, VARIANT, STEPS)))
    want = expected_lines(lang, FACTS, VARIANT, STEPS)
    assert typed(got) == typed(want)
    meta = got[0]["meta"]
    assert meta["variant"]["tie_embeddings"] is False and meta["variant"]["x_flag"] is True
    assert type(meta["variant"]["docs_per_step"]) is int and type(meta["bos"]) is int
    assert meta["variant"]["lr"] == 0.01 * 2 / 3 and meta["beta1"] == meta["variant"]["beta1"] == 0.9


def test_without_declarations_meta_and_steps_are_as_before(variant_driver):
    """No fact, no variant, no lr: meta holds exactly format 1's keys (no "variant"), steps only doc and loss."""
    lang, emit = variant_driver
    steps = [("doc", ["emma"], 3.25, None)]
    # the config's 1264 numbers (V 27, E 8, B 8, 1 layer), none a whole number (C and Go write 1.0 as 1)
    init = [(i % 7 - 3.5) / 8 for i in range(1264)]
    path = emit(variant_input([], [], steps, init), to_stdout=True)
    got = read_json_lines(path)
    assert typed(got) == typed(expected_lines(lang, [], [], steps, init))
    assert list(got[0]["meta"]) == ["format", "implementation", "n_layer", "n_embd", "n_head", "block_size", "chars",
                                    "steps", "lr", "beta1", "beta2", "eps", "dtype"]
    trace, read = load(path)  # still a format-1 trace the reader takes
    assert (trace.meta.chars, trace.meta.steps, read[0].loss) == (CHARS, 1, 3.25)


def test_variant_only_or_facts_only(variant_driver):
    lang, emit = variant_driver
    for facts, variant in ((FACTS[:1], []), ([], VARIANT[:1])):
        got = read_json_lines(emit(variant_input(facts, variant, STEPS[:1])))
        assert typed(got) == typed(expected_lines(lang, facts, variant, STEPS[:1]))


C_FLAGS = ["-Wall", "-Wextra", "-pedantic", "-Werror", "-O1"]


def test_c_header_is_also_cpp17_and_writes_the_same(tmp_path):
    """microgpt_trace.h compiles as C99 and as C++17 (-Wall -Wextra -pedantic -Werror); both write the same trace."""
    missing = [t for t in ("gcc", "g++") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"the C header is not compiled as C and C++ here: {', '.join(missing)} not found on PATH")
    write_writer("c", tmp_path)
    shutil.copy(DRIVERS / "variant.c", tmp_path)
    run(["gcc", "-std=c99", *C_FLAGS, "-o", "variant_c", "variant.c"], tmp_path)
    run(["g++", "-x", "c++", "-std=c++17", *C_FLAGS, "-o", "variant_cpp", "variant.c"], tmp_path)
    (tmp_path / "in.txt").write_text(variant_input(FACTS, VARIANT, STEPS), encoding="utf-8")
    outputs = [run([f"./{exe}", "in.txt", "-"], tmp_path).stdout for exe in ("variant_c", "variant_cpp")]
    assert outputs[0] == outputs[1]
    assert typed([json.loads(line) for line in outputs[0].splitlines()]) == \
           typed(expected_lines("c", FACTS, VARIANT, STEPS))


@pytest.mark.parametrize("case", ["25 keys", "a long string", "a long key"])
def test_c_a_declaration_that_does_not_fit_is_refused_and_close_fails(tmp_path, case):
    """The C writer keeps declarations in its struct (no malloc): past 24 keys, or a key over 23 bytes or a string
    over 39, the call returns -1, the key is left out (never cut), the rest is written, and trace_close fails."""
    if shutil.which("gcc") is None:
        pytest.skip("the C writer is not tested here: gcc not found on PATH")
    write_writer("c", tmp_path)
    shutil.copy(DRIVERS / "variant.c", tmp_path)
    run(["gcc", "-std=c99", *C_FLAGS, "-o", "variant", "variant.c"], tmp_path)
    variant = {"25 keys": [("int", f"k{i}", i) for i in range(25)],
               "a long string": [("string", "activation", "x" * 40), ("int", "docs_per_step", 2)],
               "a long key": [("bool", "k" * 24, True), ("int", "docs_per_step", 2)]}[case]
    (tmp_path / "in.txt").write_text(variant_input([], variant, STEPS[:1]), encoding="utf-8")
    r = subprocess.run(["./variant", "in.txt", "out.jsonl"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode == 4 and "a declaration was refused" in r.stderr
    kept = [d for d in variant if d[1] != "k24" and len(d[1]) < 24 and len(str(d[2])) < 40]
    assert typed(read_json_lines(tmp_path / "out.jsonl")) == typed(expected_lines("c", [], kept, STEPS[:1]))


# --- named matrices (issue 29): one matrix a call under its name, in whatever order the port's map gives ---

NAMED_FILES = {"c": "named.c", "js": "named.mjs", "rust": "named.rs", "java": "Named.java", "go": "named.go",
               "python": "named.py"}


@pytest.fixture(scope="module", params=list(LANGS))
def named_driver(request, tmp_path_factory):
    lang = request.param
    return build(lang, tmp_path_factory, variant_toolchain(lang, NAMED_FILES, "named"), NAMED_FILES[lang])


def named_input(trace, steps, dtype, order):
    """The named drivers' input, one item a line: meta's arguments, then init's matrices, then per step its
    document, its loss, its gradients' matrices and its weights' matrices; each list of matrices is its count, then
    per matrix its name, rows, cols and numbers row by row, in the order order(k, field) gives (k 0: init)."""
    m, c = trace.meta, trace.meta.config
    shapes = param_shapes(c)
    at, offset = {}, 0
    for name, (r, cols) in shapes.items():
        at[name], offset = offset, offset + r * cols

    def matrices(flat, k, field):
        if flat is None:
            return [0]
        names = order(k, field)
        out = [len(names)]
        for name in names:
            r, cols = shapes[name]
            out += [name, r, cols, *map(fmt, flat[at[name]:at[name] + r * cols])]
        return out

    out = [dtype, c.n_layer, c.n_embd, c.n_head, c.block_size, m.steps, m.chars,
           *map(fmt, (m.adam.lr, m.adam.beta1, m.adam.beta2, m.adam.eps)), *matrices(trace.init, 0, "init"),
           len(steps)]
    for s in steps:
        out += ["".join(m.chars[t] for t in s.tokens[1:-1]), fmt(s.loss), *matrices(s.grads, s.step, "grads"),
                *matrices(s.params, s.step, "params")]
    return "".join(f"{x}\n" for x in out)


def shuffled(config):
    """Another order of the seed's names for each (step, field), as a hash map would give them."""
    names = list(param_shapes(config))

    def order(k, field):
        got = names[:]
        random.Random(f"{k} {field}").shuffle(got)
        return got
    return order


def written_order(path):
    """[(step, field, name)] of the trace's named matrices, in the order written (step 0: init)."""
    out = []
    for rec in read_json_lines_lenient(path):
        for field in ("init", "grads", "params"):
            if isinstance(rec.get(field), dict):
                out += [(rec.get("step", 0), field, name) for name in rec[field]]
    return out


def read_json_lines_lenient(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_named_matrices_in_a_shuffled_order_read_back_bit_for_bit_and_check_agrees(named_driver, refs, ref_counts,
                                                                                     dtype):
    """Each matrix on a line of its own under its name, in another order at every step: the reader merges them into
    the seed's order, bit for bit, and `parity check` judges the copy as the original."""
    lang, emit = named_driver
    trace, steps = load(refs[dtype])
    order = shuffled(trace.meta.config)
    path = emit(named_input(trace, steps, dtype, order))
    names = list(param_shapes(trace.meta.config))
    want = [(0, "init", n) for n in order(0, "init")]
    for s in steps:
        want += [(s.step, f, n) for f in ("grads", "params") if getattr(s, f) is not None for n in order(s.step, f)]
    assert written_order(path) == want and want[:len(names)] != [(0, "init", n) for n in names]
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[1].startswith('{"init": {"%s": [[' % order(0, "init")[0])
    assert lines[1 + len(names)].startswith('{"step": 1, "grads": {"%s": [[' % order(1, "grads")[0])
    same((trace, steps), load(path), dtype=dtype)
    report = replay_trace(path)
    assert report.verdict == "agree" and report.dtype == dtype, report.verdict_line
    assert report.tally.count == ref_counts[dtype]


def test_named_matrices_in_the_reverse_of_the_seeds_order(named_driver, refs, ref_counts):
    lang, emit = named_driver
    trace, steps = load(refs["float64"])
    reverse = list(param_shapes(trace.meta.config))[::-1]
    path = emit(named_input(trace, steps, "float64", lambda k, field: reverse))
    assert [n for k, f, n in written_order(path) if k == 0] == reverse
    same((trace, steps), load(path))
    report = replay_trace(path)
    assert report.verdict == "agree", report.verdict_line
    assert report.tally.count == ref_counts["float64"]


CPP_FLAGS = ["-x", "c++", "-std=c++17", "-Wall", "-Wextra", "-pedantic", "-Werror", "-O1"]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_cpp_port_writes_its_unordered_map_through_the_c_header(tmp_path, refs, dtype):
    """microgpt_trace.h in a C++17 port (-Wall -Wextra -pedantic -Werror): std::string names, std::vector values, the
    matrices written in a std::unordered_map's own order; read back bit for bit, and `parity check` agrees."""
    if shutil.which("g++") is None:
        pytest.skip("the C header is not tested as C++ here: g++ not found on PATH")
    write_writer("cpp", tmp_path)
    shutil.copy(DRIVERS / "named.cpp", tmp_path)
    run(["g++", *CPP_FLAGS, "-o", "named", "named.cpp"], tmp_path, timeout=300)
    trace, steps = load(refs[dtype])
    names = list(param_shapes(trace.meta.config))
    (tmp_path / "in.txt").write_text(named_input(trace, steps, dtype, lambda k, field: names), encoding="utf-8")
    run(["./named", "in.txt", "out.jsonl"], tmp_path)
    path = tmp_path / "out.jsonl"
    assert sorted(n for k, f, n in written_order(path) if k == 0) == sorted(names)  # every matrix, the map's order
    same((trace, steps), load(path), dtype=dtype)
    report = replay_trace(path)
    assert report.verdict == "agree" and report.dtype == dtype, report.verdict_line


def test_python_writer_takes_numpy_arrays_and_torch_tensors(refs, tmp_path):
    """The Python writer, imported as a port imports it: a numpy port's arrays and torch tensors in, flat and by name
    (two under the port's own names, in meta), in no seed order; the trace reads back as pure's run and `parity
    check` agrees. (Float32 arrays: the python drivers.)"""
    import torch

    from parity.writers import microgpt_trace as mt

    trace, steps = load(refs["float64"])
    m, c = trace.meta, trace.meta.config
    shapes = param_shapes(c)

    def state(flat):  # name -> 2-D numpy array, as a numpy port holds its weights
        out, at = {}, 0
        for name, (r, cols) in shapes.items():
            out[name], at = np.array(flat[at:at + r * cols]).reshape(r, cols), at + r * cols
        return out

    path = tmp_path / "numpy.jsonl"
    own = {"wte": "tok_emb", "layer0.attn_wq": "layers.0.attn.wq"}  # the port's own names for two matrices
    with mt.open_trace(str(path)) as t:
        t.meta(implementation="numpy port", n_layer=c.n_layer, n_embd=c.n_embd, n_head=c.n_head,
               block_size=c.block_size, chars=m.chars, steps=m.steps, lr=m.adam.lr, beta1=m.adam.beta1,
               beta2=m.adam.beta2, eps=m.adam.eps, names={port: seed for seed, port in own.items()})
        for name, w in reversed(state(trace.init).items()):
            t.matrix(0, "init", own.get(name, name), torch.tensor(w))  # a torch tensor, float64
        for s in steps:
            doc = "".join(m.chars[i] for i in s.tokens[1:-1])
            if s.grads is not None:
                t.grads(s.step, list(state(s.grads).values()))  # flat: a list of 2-D arrays, flattened in order
            t.step(s.step, doc, np.float64(s.loss))
            if s.params is not None:
                for name, w in sorted(state(s.params).items()):  # sorted by name: not the seed's order
                    t.matrix(s.step, "params", name, w.ravel(), cols=w.shape[1])
    assert json.loads(path.read_text().splitlines()[0])["meta"]["names"] == {"tok_emb": "wte",
                                                                             "layers.0.attn.wq": "layer0.attn_wq"}
    same((trace, steps), load(path))
    report = replay_trace(path)
    assert report.verdict == "agree", report.verdict_line


JS_NAMES = """
import { readFileSync } from 'node:fs';
import { openTrace } from './microgpt_trace.mjs';
const { meta, init, step } = JSON.parse(readFileSync('in.json', 'utf8'));
const trace = openTrace('out.jsonl');
trace.meta(meta);
for (const [name, rows] of Object.entries(init)) trace.matrix(0, 'init', name, rows);
trace.step(1, step.doc, step.loss);
trace.close();
"""


def test_js_meta_names_the_ports_own_names(tmp_path, refs):
    """meta({ ..., names }) in the JS writer: the port's names for its matrices, which the reader maps back."""
    if shutil.which("node") is None:
        pytest.skip("the js writer is not tested here: node not found on PATH")
    trace, steps = load(refs["float64"])
    m, c = trace.meta, trace.meta.config
    own = {"wte": "tok_emb", "wpe": "pos_emb", "lm_head": "head"}
    init, at = {}, 0
    for name, (r, cols) in param_shapes(c).items():
        init[own.get(name, name)] = [trace.init[at + i * cols:at + (i + 1) * cols] for i in range(r)]
        at += r * cols
    meta = {"implementation": "names", "n_layer": c.n_layer, "n_embd": c.n_embd, "n_head": c.n_head,
            "block_size": c.block_size, "chars": m.chars, "steps": m.steps,
            "names": {port: seed for seed, port in own.items()}}
    doc = "".join(m.chars[t] for t in steps[0].tokens[1:-1])
    write_writer("js", tmp_path)
    (tmp_path / "in.json").write_text(json.dumps({"meta": meta, "init": dict(reversed(init.items())),
                                                  "step": {"doc": doc, "loss": steps[0].loss}}))
    (tmp_path / "names.mjs").write_text(JS_NAMES)
    run(["node", "names.mjs"], tmp_path)
    got = PortTrace(tmp_path / "out.jsonl")
    assert got.meta.extra["names"] == meta["names"] and bits(got.init) == bits(trace.init)
