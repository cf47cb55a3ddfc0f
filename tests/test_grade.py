"""`parity grade DIR`: a folder mixing right, wrong, hostile, partial and incomparable submissions, each judged in
a process of its own; every row right, the whole exit 1, the JSON and JUnit complete."""

import gzip
import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from tests.conftest import FIXTURES, ROOT

PORTS = FIXTURES / "ports"


@pytest.fixture(scope="module")
def graded(tmp_path_factory, corpus_file_module):
    folder = tmp_path_factory.mktemp("class")
    shutil.copy(ROOT / "tests/engines/micrograd_style.py", folder / "alice.py")  # right
    (folder / "bob.py").write_text("from tests.engines.wrong_rules import WrongRelu as Value\n")  # wrong rule
    (folder / "eve.py").write_text("import os\nprint('verdict: agree')\nos._exit(0)\n")  # exits 0 at import
    (folder / "mallory.py").write_text(  # hangs in backward, SIGTERM ignored
        "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "from tests.engines.micrograd_style import Value\n"
        "def backward(self):\n    while True:\n        pass\nValue.backward = backward\n")
    (folder / "trent.py").write_text("class Value:\n    pass\n")  # cannot even be checked
    shutil.copy(PORTS / "gist_default.jsonl.gz", folder / "carol.jsonl.gz")  # right port
    shutil.copy(PORTS / "seed_bug_exp_grad_one.jsonl.gz", folder / "dan.jsonl.gz")  # wrong port
    shutil.copy(PORTS / "gist_2x12x3.jsonl.gz", folder / "frank.jsonl.gz")  # another config: not comparable
    with gzip.open(PORTS / "gist_default.jsonl.gz", "rt") as f:  # losses only: partial
        lines = [json.loads(x) for x in f.read().splitlines() if x.startswith("{")]
    for rec in lines:
        rec.pop("grads", None), rec.pop("params", None)
    (folder / "grace.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    out = folder.parent / "out"
    r = subprocess.run([sys.executable, "-m", "parity", "grade", str(folder), "--jobs", "2", "--timeout", "15",
                        "--json", str(out / "g.json"), "--junit", str(out / "g.xml"), "--data",
                        str(corpus_file_module)], cwd=ROOT, capture_output=True, text=True, timeout=900)
    return r, json.loads((out / "g.json").read_text()), ET.parse(out / "g.xml").getroot()


@pytest.fixture(scope="module")
def corpus_file_module(tmp_path_factory):
    from pure.corpus import write_corpus

    return write_corpus(tmp_path_factory.mktemp("corpus") / "corpus.txt")


def test_every_submission_gets_its_verdict(graded):
    r, doc, _ = graded
    rows = {row["name"]: row for row in doc["submissions"]}
    assert {n: rows[n]["verdict"] for n in rows} == {
        "alice.py": "agree", "bob.py": "diverge", "eve.py": "diverge", "mallory.py": "diverge", "trent.py": "error",
        "carol.jsonl.gz": "agree", "dan.jsonl.gz": "diverge", "frank.jsonl.gz": "not comparable",
        "grace.jsonl": "partial"}
    assert "exited with status 0 during import" in rows["eve.py"]["detail"]
    assert "timed out" in rows["mallory.py"]["detail"] and rows["mallory.py"]["seconds"] < 120
    assert rows["dan.jsonl.gz"]["diagnosis"]["id"] == "exp-grad-one"
    assert "the protocol needs" in rows["trent.py"]["detail"]
    assert r.returncode == 1, r.stderr[-500:]
    assert r.stdout.strip().splitlines()[-1] == ("grade: 2 of 9 submissions agree (4 diverge, 1 error, "
                                                 "1 not comparable, 1 partial)")
    assert doc["summary"] == {"submissions": 9, "agree": 2, "diverge": 4, "error": 1, "not comparable": 1,
                              "partial": 1}
    for row in doc["submissions"]:
        assert {"path", "kind", "verdict", "first_divergence", "diagnosis", "seconds"} <= set(row)


def test_the_junit_has_one_case_per_submission(graded):
    _, doc, xml = graded
    cases = xml.find("testsuite").findall("testcase")
    assert len(cases) == 9
    assert sum(c.find("failure") is not None for c in cases) == 7


def test_a_hostile_submission_cannot_touch_the_grade(graded):
    r, doc, _ = graded
    assert "verdict: agree" not in r.stdout  # what eve.py printed stays in its own worker's output
    assert "Traceback" not in r.stderr


def test_bad_folders_and_terms_are_one_error_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "parity", "grade", str(tmp_path)], cwd=ROOT, capture_output=True,
                       text=True)
    assert r.returncode == 2 and r.stderr.strip().startswith("error: ") and "holds no submission" in r.stderr
    (tmp_path / "a.py").write_text("")
    (tmp_path / "terms.json").write_text('{"n_layers": 2}')
    r = subprocess.run([sys.executable, "-m", "parity", "grade", str(tmp_path), "--config",
                        str(tmp_path / "terms.json")], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 2 and "unknown terms n_layers" in r.stderr and r.stderr.count("\n") == 1


def test_each_row_carries_the_wrong_rule_its_fix_and_why_the_run_was_skipped(tmp_path):
    """For a teacher: the rule, the input and the fix per row; an error keeps its cause; a skipped run says why;
    the Markdown is a table a student reads."""
    folder = tmp_path / "class"
    folder.mkdir()
    shutil.copy(ROOT / "tests/engines/learner_mul_swapped.py", folder / "mia.py")
    (folder / "ned.py").write_text("from micrograd.engine import Value\n")  # a package the grader does not have
    (folder / "oli.py").write_text("from tests.engines.wrong_rules import MissingRelu as Value\n")  # lacks relu
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "parity", "grade", str(folder), "--jobs", "3", "--timeout", "60",
                        "--json", str(out / "g.json"), "--markdown", str(out / "g.md")], cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 1, r.stdout + r.stderr
    rows = {row["name"]: row for row in json.loads((out / "g.json").read_text())["submissions"]}
    mia, ned, oli = rows["mia.py"], rows["ned.py"], rows["oli.py"]
    assert mia["verdict"] == "diverge" and mia["diagnosis"]["id"] == "ops:mul"
    assert mia["diagnosis"]["fix"] == "mul's local derivative: d(ab)/da = b, d(ab)/db = a"
    assert mia["diagnosis"]["rules"][0]["detail"] == "d/da: got 0.5, torch.autograd says -1.2"
    assert mia["run"].startswith("skipped: ops found a wrong rule")
    assert ned["verdict"] == "error" and "No module named 'micrograd'" in ned["detail"]
    assert "parity-worker" not in ned["detail"] and ned["run"].startswith("skipped: the class could not be checked")
    assert oli["verdict"] == "partial" and oli["run"].startswith("skipped: the class lacks relu, which the model needs")
    table = r.stdout
    assert "mul at a=0.5, b=-1.2: d/da: got 0.5" in table
    assert "ModuleNotFoundError: No module named 'micrograd'" in table
    md = (out / "g.md").read_text()
    assert ("| mia.py | diverge | mul at a=0.5, b=-1.2: d/da: got 0.5, torch.autograd says -1.2 | mul's local "
            "derivative: d(ab)/da = b, d(ab)/db = a | skipped: ops found a wrong rule") in md
    assert "| oli.py | partial | lacks relu, which the model needs | relu: d/dx relu(x) = 1 where x > 0, else 0 |" in md
