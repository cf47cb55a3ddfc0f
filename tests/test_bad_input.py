"""Every bad input through the real commands: one `error:` line on stderr, the documented exit code, nothing left
in the output folder, and the inputs unchanged (the table below; then signals, broken pipes and the umask)."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

import pytest

from pure.corpus import write_corpus
from tests.conftest import ROOT

TINY = ["--steps", "3", "--n-embd", "8", "--n-head", "2", "--block-size", "8", "--samples", "2"]
UNWRITABLE = "/proc/microgpt-parity-test/out"  # /proc takes no new folders, even for root
BAD_ENGINE = "class Value:\n    def __init__(self, data):\n        self.data = data\n"


@dataclass
class Case:
    name: str
    module: str  # pure, torch_ref or parity
    args: list  # {data} {ckpt} {out} {engine} are filled in
    code: int  # the documented exit code
    says: str  # a piece of the one error line
    ckpt: dict = field(default_factory=dict)  # edits to a valid checkpoint written for the case ("raw": file text)
    data: str = None  # the data file's text, when not the synthetic corpus (bytes as latin-1)


def valid_checkpoint():
    from pure.corpus import make_corpus
    from pure.train import Trainer
    t = Trainer(make_corpus(), steps=1, n_embd=8, n_head=2, block_size=8)
    return {"format": "microgpt-parity/checkpoint", "version": 1, "config": t.config.to_dict(),
            "vocab": t.tokenizer.chars, "params": t.export_params(), "rng": t.rng.get_state(), "meta": {}}


CASES = [
    # the data
    Case("data missing", "pure", ["train", "--data", "{out}/../nope.txt", *TINY], 2, "not found"),
    Case("data empty", "pure", ["train", "--data", "{data}", *TINY], 2, "holds no documents", data="\n\n"),
    Case("data binary", "pure", ["train", "--data", "{data}", *TINY], 2, "not UTF-8", data="\xff\xfe\x00\x01"),
    Case("data is a folder", "pure", ["train", "--data", "{out}/..", *TINY], 2, "is a directory"),
    # flags and configs
    Case("unknown flag", "pure", ["train", "--data", "{data}", "--bogus", *TINY], 2, "train --help"),
    Case("steps 0", "pure", ["train", "--data", "{data}", *TINY, "--steps", "0"], 2, "positive integer"),
    Case("steps not a number", "pure", ["train", "--data", "{data}", *TINY, "--steps", "x"], 2, "positive integer"),
    Case("lr nan", "pure", ["train", "--data", "{data}", *TINY, "--lr", "nan"], 2, "positive finite"),
    Case("heads do not divide width", "pure", ["train", "--data", "{data}", *TINY, "--n-head", "3"], 2,
         "divisible"),
    Case("no subcommand", "pure", [], 2, "required"),
    # outputs
    Case("trace is a folder", "pure", ["train", "--data", "{data}", *TINY, "--trace", "{out}"], 2, "is a directory"),
    Case("trace unwritable", "pure", ["train", "--data", "{data}", *TINY, "--trace", UNWRITABLE + "/t.jsonl"], 2,
         "cannot create"),
    Case("save unwritable", "pure", ["train", "--data", "{data}", *TINY, "--save", UNWRITABLE + "/m.json"], 2,
         "cannot create"),
    Case("trace under a file", "pure", ["train", "--data", "{data}", *TINY, "--trace", "{data}/t.jsonl"], 2,
         "is a file, not a folder"),
    Case("trace overwrites the data", "pure", ["train", "--data", "{data}", *TINY, "--trace", "{data}"], 2,
         "overwrite the input"),
    Case("trace and save the same file", "pure",
         ["train", "--data", "{data}", *TINY, "--trace", "{out}/x", "--save", "{out}/x"], 2, "both name"),
    # a run that diverges: exit 1 in both implementations, and no trace, checkpoint or new folder left
    Case("pure diverges", "pure", ["train", "--data", "{data}", *TINY, "--lr", "1e6", "--trace", "{out}/new/t.jsonl",
                                   "--save", "{out}/new/m.json"], 1, "training diverged"),
    Case("torch_ref diverges", "torch_ref", ["train", "--data", "{data}", *TINY, "--lr", "1e6",
                                             "--trace", "{out}/new/t.jsonl"], 1, "training diverged"),
    Case("torch_ref bad device", "torch_ref", ["train", "--data", "{data}", *TINY, "--device", "tpu"], 2, "device"),
    # checkpoints
    Case("checkpoint missing", "pure", ["sample", "--load", "{out}/../none.json"], 2, "not found"),
    Case("checkpoint is a folder", "pure", ["sample", "--load", "{out}/.."], 2, "is a directory"),
    Case("checkpoint not JSON", "pure", ["sample", "--load", "{ckpt}"], 2, "not readable JSON", {"raw": "{not json"}),
    Case("checkpoint truncated", "pure", ["sample", "--load", "{ckpt}"], 2, "not readable JSON", {"truncate": 0.5}),
    Case("checkpoint of another format", "pure", ["sample", "--load", "{ckpt}"], 2, "not a microgpt-parity",
         {"format": "x"}),
    Case("checkpoint rng state", "pure", ["sample", "--load", "{ckpt}"], 2, "rng.state", {"rng.state": "x"}),
    Case("checkpoint rng spare", "pure", ["sample", "--load", "{ckpt}"], 2, "rng.spare", {"rng.spare": None}),
    Case("checkpoint param shape", "pure", ["sample", "--load", "{ckpt}"], 2, "shape", {"params.wte": [[0.0]]}),
    Case("checkpoint nan weight", "pure", ["sample", "--load", "{ckpt}"], 2, "non-finite", {"nan": True}),
    Case("checkpoint vocab", "torch_ref", ["sample", "--load", "{ckpt}"], 2, "vocab", {"vocab": ["a"]}),
    # parity
    Case("parity json is a folder", "parity", ["run", "--data", "{data}", *TINY, "--json", "{out}"], 2,
         "is a directory"),
    Case("parity plot unwritable", "parity", ["run", "--data", "{data}", *TINY, "--plot", UNWRITABLE + "/p.png"], 2,
         "cannot create"),
    Case("parity plot format", "parity", ["run", "--data", "{data}", *TINY, "--plot", "{out}/p.xyz"], 2,
         "unsupported format"),
    Case("parity json overwrites the data", "parity", ["run", "--data", "{data}", *TINY, "--json", "{data}"], 2,
         "overwrite the input"),
    Case("parity modes", "parity", ["run", "--data", "{data}", *TINY, "--modes", "both"], 2, "--modes"),
    Case("parity unknown flag", "parity", ["run", "--bogus"], 2, "run --help"),
    Case("value file missing", "parity", ["ops", "--value", "{out}/../none.py:Value"], 2, "no such file"),
    Case("value spec", "parity", ["ops", "--value", "nonsense"], 2, "module:Class"),
    Case("value lacks the protocol", "parity", ["run", "--data", "{data}", *TINY, "--value", "{engine}:Value"], 2,
         "Value"),
    Case("mutants unknown", "parity", ["mutants", "--only", "nope"], 2, "unknown mutants"),
]


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def make_checkpoint(path, edits):
    if "raw" in edits:
        path.write_text(edits["raw"])
        return
    doc = valid_checkpoint()
    for key, value in edits.items():
        if key == "truncate":
            continue
        if key == "nan":
            doc["params"]["wte"][0][0] = float("nan")
            continue
        target, *rest = key.split(".")
        if rest:
            doc[target][rest[0]] = value
        else:
            doc[target] = value
    text = json.dumps(doc)  # allow_nan: a NaN weight is written as NaN, which json.load accepts
    if "truncate" in edits:
        text = text[: int(len(text) * edits["truncate"])]
    path.write_text(text)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case, tmp_path):
    inputs = tmp_path / "in"
    out = tmp_path / "out"
    inputs.mkdir()
    out.mkdir()
    data = inputs / "data.txt"
    if case.data is None:
        write_corpus(data)
    else:
        data.write_bytes(case.data.encode("latin-1"))
    ckpt = inputs / "model.json"
    if case.ckpt:
        make_checkpoint(ckpt, case.ckpt)
    engine = inputs / "engine.py"
    engine.write_text(BAD_ENGINE)
    before = {p: digest(p) for p in inputs.iterdir()}
    args = [a.format(data=data, ckpt=ckpt, out=out, engine=engine) for a in case.args]
    env = dict(os.environ, MICROGPT_NO_DOWNLOAD="1")
    r = subprocess.run([sys.executable, "-m", case.module, *args], cwd=ROOT, capture_output=True, text=True,
                       timeout=120, env=env)
    lines = [line for line in r.stderr.splitlines() if line.strip() and not line.startswith("parity step")]
    assert r.returncode == case.code, (r.returncode, r.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert case.says in lines[0], lines[0]
    assert "Traceback" not in r.stderr
    assert sorted(p.name for p in out.iterdir()) == [], "a failed run left files or folders behind"
    assert {p: digest(p) for p in inputs.iterdir()} == before, "an input file changed"


def test_sigterm_removes_partial_outputs(tmp_path):
    """SIGTERM in the middle of a run: exit 143, one line, no temporary or half-written file, no new folder."""
    data = write_corpus(tmp_path / "data.txt")
    out = tmp_path / "out"
    out.mkdir()
    p = subprocess.Popen([sys.executable, "-m", "pure", "train", "--data", str(data), "--steps", "100000",
                          "--n-embd", "8", "--n-head", "2", "--block-size", "8", "--trace", str(out / "d/t.jsonl"),
                          "--save", str(out / "d/m.json")], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not any((out / "d").glob(".t.jsonl.*.tmp")):
        time.sleep(0.1)  # the trace's temporary file exists once training has started
    time.sleep(0.5)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 143, err
    assert [line for line in err.splitlines() if line.strip()] == [
        "terminated (SIGTERM); no partial output was kept"]
    assert list(out.iterdir()) == []


def test_broken_pipe_is_quiet(tmp_path):
    """`pure train | head -1`: no BrokenPipeError traceback, and no half-written trace."""
    data = write_corpus(tmp_path / "data.txt")
    cmd = (f"{sys.executable} -m pure train --data {data} --steps 40 --n-embd 8 --n-head 2 --block-size 8 "
           f"--samples 20 --trace {tmp_path}/t.jsonl | head -1")
    r = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.stdout.startswith("num docs: ")
    assert r.stderr == ""
    assert r.returncode == 141
    assert not (tmp_path / "t.jsonl").exists() and not list(tmp_path.glob(".t.jsonl.*"))


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_outputs_honour_the_umask(tmp_path, umask, mode):
    data = write_corpus(tmp_path / "data.txt")
    cmd = (f"umask {umask:03o} && {sys.executable} -m pure train --data {data} {' '.join(TINY)} "
           f"--trace {tmp_path}/t.jsonl --save {tmp_path}/m.json")
    r = subprocess.run(["bash", "-c", cmd], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    for name in ("t.jsonl", "m.json"):
        assert (tmp_path / name).stat().st_mode & 0o777 == mode


def test_plot_format_follows_the_extension(tmp_path):
    from parity.commands.run import run_parity
    from parity.judge.plot import write_plot
    from parity.sources.pure_side import RunConfig
    from pure.corpus import make_corpus

    report = run_parity(make_corpus(), RunConfig(steps=2, n_embd=8, n_head=2, block_size=8, samples=1))
    magic = {".png": b"\x89PNG", ".pdf": b"%PDF", ".svg": b"<?xml"}
    for suffix, head in magic.items():
        write_plot(report, tmp_path / f"p{suffix}")
        assert (tmp_path / f"p{suffix}").read_bytes().startswith(head)
