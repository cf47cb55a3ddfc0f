"""`pip install .` into a fresh virtual environment, offline, gives working commands outside the checkout."""

import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from pure import __version__
from pure.corpus import write_corpus
from tests.conftest import ROOT


def run(*cmd, cwd):
    return subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A new venv whose only link to this one is a .pth line: torch and the rest are 'already there' (the pinned
    wheel is what `make install` puts in .venv), and the project itself is installed from a source tree with
    --no-index, so nothing is downloaded."""
    tmp = tmp_path_factory.mktemp("pkg")
    venv = tmp / "venv"
    r = run(sys.executable, "-m", "venv", venv, cwd=tmp)
    assert r.returncode == 0, r.stderr
    py = venv / "bin" / "python"
    site = Path(run(py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp).stdout.strip())
    (site / "torch_from_dev_venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # The build backend comes from there too: a new venv's own setuptools may predate PEP 660 wheels
    # (3.11 bundles 65.5, without bdist_wheel) and 3.12+ bundles none.
    run(py, "-m", "pip", "uninstall", "-q", "-y", "setuptools", cwd=tmp)
    r = run(py, "-m", "pip", "install", "--no-index", "--no-build-isolation", "--disable-pip-version-check",
            f"{ROOT}[torch,plot]", cwd=tmp)
    assert r.returncode == 0, r.stdout + r.stderr
    return venv, tmp


def test_the_package_is_imported_from_the_venv_not_the_checkout(installed):
    venv, tmp = installed
    r = run(venv / "bin" / "python", "-c", "import parity, pure, torch_ref; print(parity.__file__, pure.__file__)",
            cwd=tmp)
    assert r.returncode == 0, r.stderr
    assert str(ROOT) not in r.stdout and str(venv) in r.stdout


@pytest.mark.parametrize("command", ["microgpt-parity", "microgpt-pure", "microgpt-torch"])
def test_every_command_has_version_and_help(installed, command):
    venv, tmp = installed
    r = run(venv / "bin" / command, "--version", cwd=tmp)
    assert r.returncode == 0 and r.stdout.strip() == f"{command} {__version__}", r.stdout + r.stderr
    r = run(venv / "bin" / command, "--help", cwd=tmp)
    assert r.returncode == 0 and r.stdout.startswith(f"usage: {command}")


def test_commands_work_outside_the_checkout(installed):
    venv, tmp = installed
    data = write_corpus(tmp / "corpus.txt")
    tiny = ["--steps", "2", "--n-embd", "8", "--n-head", "2", "--block-size", "8", "--samples", "2"]
    r = run(venv / "bin" / "microgpt-pure", "train", "--data", data, *tiny, "--save", tmp / "m.json", cwd=tmp)
    assert r.returncode == 0, r.stderr
    r = run(venv / "bin" / "microgpt-torch", "sample", "--load", tmp / "m.json", "--samples", "2", cwd=tmp)
    assert r.returncode == 0 and r.stdout.count("sample ") == 2, r.stderr
    r = run(venv / "bin" / "microgpt-parity", "run", "--data", data, *tiny, "--no-table", cwd=tmp)
    assert r.returncode == 0 and r.stdout.splitlines()[-1].startswith("verdict: agree"), r.stdout + r.stderr
    r = run(venv / "bin" / "microgpt-parity", "run", "--bogus", cwd=tmp)
    assert r.returncode == 2 and r.stderr.strip() == ("error: unrecognized arguments: --bogus; "
                                                      "see `microgpt-parity run --help`")


def test_torch_and_numpy_are_dependencies_and_matplotlib_an_extra(installed):
    """`pip install torch==2.13.0` then `pip install .` must bring numpy too: they are declared, with ranges."""
    venv, tmp = installed
    code = "import importlib.metadata as m; print('\\n'.join(m.requires('microgpt-parity')))"
    r = run(venv / "bin" / "python", "-c", code, cwd=tmp)
    requires = r.stdout.splitlines()
    assert any(x.startswith("torch") and ">=" in x and "extra" not in x for x in requires), requires
    assert any(x.startswith("numpy") and ">=" in x and "extra" not in x for x in requires), requires
    assert any(x.startswith("matplotlib") and 'extra == "plot"' in x for x in requires), requires
    r = run(venv / "bin" / "python", "-c", "import parity, parity.testing; print(parity.check_trace.__doc__[:6])",
            cwd=tmp)
    assert r.returncode == 0 and r.stdout.startswith("`parit"), r.stderr
