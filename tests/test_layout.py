"""parity/ laid out as its design: sub-packages by role whose imports run one way, no import circle, no module
over MAX_LINES, every sub-package saying what it holds and may import, every package installed, and the README's
code layout naming every file.

Every import counts, a function's lazy one too: it is a dependency all the same, only a later one. The checks are
functions of a folder, so that each is also shown to catch what it is for, on a small package made here.
"""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 600  # a module a newcomer reads in one sitting; past it, split it by concept

# The layers, bottom up, and what each may import besides itself. A module's layer is the longest name here that
# is its own or a package above it. parity/__init__.py is "parity".
BELOW_COMMANDS = {"parity.worker", "parity.diagnosis", "parity.ops", "parity.sources", "parity.judge", "parity.errors"}
LAYERS = {
    "parity.errors": set(),
    "parity.writers": set(),
    "parity.judge": {"parity.errors"},
    "parity.sources": {"parity.judge", "parity.errors"},
    "parity.ops": {"parity.sources", "parity.judge", "parity.errors"},
    "parity.worker": {"parity.ops", "parity.sources", "parity.judge", "parity.errors"},
    "parity.diagnosis": {"parity.sources", "parity.judge", "parity.errors"},
    "parity.commands": BELOW_COMMANDS,
    "parity.api": {"parity.commands", "parity.errors"},
    "parity": {"parity.api", "parity.errors"},
    "parity.testing": {"parity", "parity.api", "parity.errors"},
    "parity.__main__": {"parity", "parity.api", "parity.commands", "parity.writers", "parity.errors"} | BELOW_COMMANDS,
}


def modules(root, top="parity"):
    """{dotted name: path} of every module of the package at root/top (a package by its __init__)."""
    out = {}
    for path in sorted((root / top).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def import_graph(root, top="parity"):
    """{module: {imported module of the same package: first line}} from every import statement, wherever it is."""
    mods = modules(root, top)
    graph = {}
    for name, path in mods.items():
        is_package = path.name == "__init__.py"
        package = name if is_package else name.rpartition(".")[0]
        edges = {}
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")
                    up = up[:len(up) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                # `from pkg import mod` imports the module; `from mod import name`, the module
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            for t in targets:
                while t and t not in mods:  # import a.b.c: the deepest module that is one of ours
                    t = t.rpartition(".")[0]
                if t and t != name:
                    edges.setdefault(t, node.lineno)
        graph[name] = edges
    return graph


def cycles(graph):
    """Every import circle, each as the list of its modules (the first repeated at the end); [] when none."""
    found, state = [], {}

    def visit(m, stack):
        state[m] = "open"
        stack.append(m)
        for t in sorted(graph.get(m, ())):
            if state.get(t) == "open":
                found.append(stack[stack.index(t):] + [t])
            elif t not in state:
                visit(t, stack)
        stack.pop()
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [])
    return found


def layer(name, layers):
    while name not in layers:
        name = name.rpartition(".")[0]
        assert name, "every module is in a layer"
    return name


def violations(graph, paths, layers):
    """'file:line: a imports b (layer may import ...)' for each import that runs the wrong way."""
    out = []
    for a, edges in sorted(graph.items()):
        la = layer(a, layers)
        for b, line in sorted(edges.items()):
            lb = layer(b, layers)
            if lb != la and lb not in layers[la]:
                allowed = ", ".join(sorted(layers[la])) or "nothing of the package"
                out.append(f"{paths[a].relative_to(paths[a].parents[len(a.split('.')) - 1])}:{line}: {a} imports {b}"
                           f" ({la} may import {allowed})")
    return out


# ---- the checks, on parity/ itself ----------------------------------------------------------------------------------

GRAPH = import_graph(ROOT)
PATHS = modules(ROOT)


def test_no_import_circle():
    assert cycles(GRAPH) == [], "import circles: " + "; ".join(" -> ".join(c) for c in cycles(GRAPH))


def test_imports_run_one_way():
    assert violations(GRAPH, PATHS, LAYERS) == []


def test_every_module_has_a_layer_and_the_layers_exist():
    assert {layer(m, LAYERS) for m in GRAPH} == set(LAYERS)


def test_no_module_is_over_the_limit():
    long = {str(p.relative_to(ROOT)): n for p in PATHS.values() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}, f"over {MAX_LINES} lines: {long}"


def test_every_sub_package_says_what_it_holds_and_may_import():
    for name, path in PATHS.items():
        if path.name != "__init__.py" or name == "parity":
            continue
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        assert re.search(r"May import|Imports nothing", doc), f"{path.relative_to(ROOT)}: no 'May import' line"


def test_every_package_is_installed():
    text = (ROOT / "pyproject.toml").read_text()
    listed = set(re.findall(r'"([a-z_.]+)"', re.search(r"packages = \[(.*?)\]", text, re.S).group(1)))
    packages = {n for n, p in PATHS.items() if p.name == "__init__.py"}
    assert packages <= listed, f"not in pyproject.toml's packages: {sorted(packages - listed)}"


def readme_tree(readme):
    """The paths the README's code layout shows (a tree of `├── name  words` lines under `parity/`), folders with
    a trailing /."""
    section = readme.split("## Code layout", 1)[1].split("\n## ", 1)[0]
    block = section.split("```\nparity/\n", 1)[1].split("```", 1)[0]
    paths, stack = set(), []
    for line in block.splitlines():
        m = re.match(r"^((?:│   |    )*)[├└]── (\S+)", line)
        assert m, f"not a line of the tree: {line!r}"
        depth = len(m.group(1)) // 4
        stack[depth:] = [m.group(2).rstrip("/")]
        paths.add("/".join(stack) + ("/" if m.group(2).endswith("/") else ""))
    return paths


def test_the_readme_code_layout_shows_every_file_once():
    parity = ROOT / "parity"
    files = {str(p.relative_to(parity)) + ("/" if p.is_dir() else "") for p in parity.rglob("*")
             if "__pycache__" not in p.parts and p.name != "__pycache__"}
    shown = readme_tree((ROOT / "README.md").read_text())
    assert sorted(files - shown) == [], "in parity/, not in the README's code layout"
    assert sorted(shown - files) == [], "in the README's code layout, not in parity/"


# ---- the checks catch what they are for ----------------------------------------------------------------------------

def _package(tmp_path, files):
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return import_graph(tmp_path, "pkg"), modules(tmp_path, "pkg")


@pytest.mark.parametrize("lazy", [False, True])
def test_a_circle_is_found_even_through_a_lazy_import(tmp_path, lazy):
    back = "def f():\n    from .a import x\n" if lazy else "from .a import x\n"
    graph, _ = _package(tmp_path, {"pkg/__init__.py": "", "pkg/a.py": "from pkg.sub import b\nx = 1\n",
                                   "pkg/sub/__init__.py": "", "pkg/sub/b.py": back.replace(".a", "..a")})
    assert cycles(graph) == [["pkg.a", "pkg.sub.b", "pkg.a"]]


def test_an_import_up_the_layers_is_named(tmp_path):
    graph, paths = _package(tmp_path, {"pkg/__init__.py": "", "pkg/low/__init__.py": "",
                                       "pkg/low/x.py": "import pkg.high.y\n", "pkg/high/__init__.py": "",
                                       "pkg/high/y.py": "from ..low import x\n"})
    layers = {"pkg": set(), "pkg.low": set(), "pkg.high": {"pkg.low"}}
    assert violations(graph, paths, layers) == [
        "pkg/low/x.py:1: pkg.low.x imports pkg.high.y (pkg.low may import nothing of the package)"]
    assert cycles(graph) == [["pkg.high.y", "pkg.low.x", "pkg.high.y"]]


def test_the_tree_reader_sees_a_missing_or_extra_file():
    readme = "## Code layout\n\n```\nparity/\n├── a.py     words\n└── sub/\n    └── b.py\n```\n## Next\n"
    assert readme_tree(readme) == {"a.py", "sub/", "sub/b.py"}
