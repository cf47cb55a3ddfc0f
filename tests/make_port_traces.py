"""Regenerate tests/fixtures/ports/*.jsonl.gz: port traces written by real programs no one here wrote.

    python tests/make_port_traces.py [--bun PATH] [--microgpt-py PATH] [--only NAMES]

Copies the seed program (../shared/seed/microgpt.ts, run under bun) and Karpathy's microgpt.py (a public copy
fetched into a git-ignored folder: --microgpt-py PATH or $MICROGPT_PY; without it the gist variants are skipped,
saying so) into a scratch folder, patches in only the print lines of the port-trace
format (and, per variant, a config or one deliberate bug), gives them the project's synthetic corpus
(pure/corpus.py: never the names data, since a trace holds the documents), runs them and keeps what they
print. Nothing of their code is committed: only these traces, the figures they printed.
"""

import argparse
import gzip
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
OUT = ROOT / "tests" / "fixtures" / "ports"
sys.path.insert(0, str(ROOT))

from pure.corpus import write_corpus  # noqa: E402

DEFAULT = dict(n_layer=1, n_embd=16, n_head=4, block_size=16)
OTHER = dict(n_layer=2, n_embd=12, n_head=3, block_size=8)
# name: (program, config, steps, steps with tensors, bug)
VARIANTS = {
    "seed_default": ("seed", DEFAULT, 20, 5, None),
    "seed_2x12x3": ("seed", OTHER, 20, 5, None),
    "gist_default": ("gist", DEFAULT, 20, 5, None),
    "gist_2x12x3": ("gist", OTHER, 8, 3, None),
    "seed_bug_unscaled_attention": ("seed", DEFAULT, 3, 2, "scale"),
    "seed_bug_exp_grad_one": ("seed", DEFAULT, 3, 2, "exp"),
    "seed_bug_no_bias_correction": ("seed", DEFAULT, 3, 2, "adam"),
    "gist_bug_unscaled_attention": ("gist", DEFAULT, 3, 2, "scale"),
    "gist_bug_exp_grad_one": ("gist", DEFAULT, 3, 2, "exp"),
    "gist_bug_no_bias_correction": ("gist", DEFAULT, 3, 2, "adam"),
}
# More bugs, each as the literal edits that commit it in each program (the catalogue id it must be named as is
# the variant's suffix), on a small config so that the traces stay small: tests/test_diagnose.py.
SMALL = dict(n_layer=1, n_embd=8, n_head=2, block_size=8)
EDITS = {
    "relu-grad": {"seed": [("[this.data > 0 ? 1 : 0]", "[1]")],
                  "gist": [("(float(self.data > 0),)", "(1.0,)")]},
    "log-grad-inverse-square": {"seed": [("[1 / this.data]", "[1 / this.data ** 2]")],
                                "gist": [("(1/self.data,)", "(1/self.data**2,)")]},
    "mul-swapped": {"seed": [("[o.data, this.data]", "[this.data, o.data]")],
                    "gist": [("(other.data, self.data)", "(self.data, other.data)")]},
    "pow-off-by-one": {"seed": [("[exp * this.data ** (exp - 1)]", "[exp * this.data ** exp]")],
                       "gist": [("(other * self.data**(other-1),)", "(other * self.data**other,)")]},
    "grad-assigned": {"seed": [("v._children[j].grad += v._localGrads[j] * v.grad;",
                                "v._children[j].grad = v._localGrads[j] * v.grad;")],
                      "gist": [("child.grad += local_grad * v.grad", "child.grad = local_grad * v.grad")]},
    "attention-scaled-by-n-embd": {"seed": [("const scale = headDim ** 0.5;",
                                             "const scale = (headDim * nHead) ** 0.5;")],
                                   "gist": [(" / head_dim**0.5 for t in", " / n_embd**0.5 for t in")]},
    "rmsnorm-eps-outside-sqrt": {"seed": [("const scale = ms.add(1e-5).pow(-0.5);",
                                           "const scale = ms.pow(0.5).add(1e-5).pow(-1);")],
                                 "gist": [("scale = (ms + 1e-5) ** -0.5", "scale = (ms ** 0.5 + 1e-5) ** -1")]},
    "rmsnorm-missing-embed": {"seed": [("// Pre-normalization before the first attention layer.\nx = rmsnorm(x);", "")],
                              "gist": [("    x = rmsnorm(x)\n\n    for li in range(n_layer):",
                                        "\n    for li in range(n_layer):")]},
    "residual-dropped-mlp": {"seed": [("x = x.map((xi, i) => xi.add(xResidual2[i]));", "")],
                             "gist": [("        x = linear(x, state_dict[f'layer{li}.mlp_fc2'])\n"
                                       "        x = [a + b for a, b in zip(x, x_residual)]",
                                       "        x = linear(x, state_dict[f'layer{li}.mlp_fc2'])")]},
    "lr-decay-off-by-one": {"seed": [("(1 - step / numSteps)", "(1 - (step + 1) / numSteps)")],
                            "gist": [("(1 - step / num_steps)", "(1 - (step + 1) / num_steps)")]},
    "adam-betas-swapped": {"seed": [("const beta1 = 0.85;", "const beta1 = 0.99;"),
                                    ("const beta2 = 0.99;", "const beta2 = 0.85;")],
                           "gist": [("0.01, 0.85, 0.99, 1e-8", "0.01, 0.99, 0.85, 1e-8")]},
    "adam-eps-inside-sqrt": {"seed": [("(vHat ** 0.5 + epsAdam)", "((vHat + epsAdam) ** 0.5)")],
                             "gist": [("(v_hat ** 0.5 + eps_adam)", "((v_hat + eps_adam) ** 0.5)")]},
    "grads-not-zeroed": {"seed": [("params[i].grad = 0;", "")],
                         "gist": [("        p.grad = 0\n", "")]},
}
for _bug in EDITS:
    for _program in ("seed", "gist"):
        VARIANTS[f"{_program}_bug_{_bug}"] = (_program, SMALL, 3, 3, _bug)


def sub(text, old, new, count=1):
    """Replace exactly `count` occurrences of the literal `old` (fail loudly if the program changed)."""
    found = text.count(old)
    if found != count:
        raise SystemExit(f"patch failed: expected {count} of {old!r}, found {found}")
    return text.replace(old, new)


def patch_seed(src, c, steps, tensor_steps, bug):
    head_dim = c["n_embd"] // c["n_head"]
    for name, value in (("blockSize", c["block_size"]), ("headDim", head_dim), ("nEmbd", c["n_embd"]),
                        ("nHead", c["n_head"]), ("nLayer", c["n_layer"]), ("numSteps", steps)):
        src, n = re.subn(rf"const {name} = \d+;", f"const {name} = {value};", src)
        assert n == 1, name
    meta = ("console.log(JSON.stringify({meta: {format: 1, implementation: 'seed microgpt.ts under bun', "
            "n_layer: nLayer, n_embd: nEmbd, n_head: nHead, block_size: blockSize, chars: uchars.join(''), "
            "steps: numSteps}}));\nconsole.log(JSON.stringify({init: params.map(p => p.data)}));\n")
    src = sub(src, f"const numSteps = {steps};\n", f"const numSteps = {steps};\n" + meta)
    src = sub(src, "loss.backward();\n", "loss.backward();\nconst traceGrads = params.map(p => p.grad);\n")
    progress = re.search(r"process\.stdout\.write\([\s\S]*?\);\n", src)
    src = src[:progress.start()] + (
        f"console.log(JSON.stringify({{step: step + 1, doc, loss: loss.data, ...(step < {tensor_steps} ? "
        f"{{grads: traceGrads, params: params.map(p => p.data)}} : {{}})}}));\n") + src[progress.end():]
    for old, new in EDITS.get(bug, {}).get("seed", []):
        src = sub(src, old, new)
    if bug == "scale":
        src = sub(src, "const scale = headDim ** 0.5;", "const scale = 1;")
    elif bug == "exp":
        src = sub(src, "[this], [Math.exp(this.data)]);", "[this], [1]);")
    elif bug == "adam":
        src = sub(src, "const mHat = m[i] / (1 - beta1 ** (step + 1));", "const mHat = m[i];")
        src = sub(src, "const vHat = v[i] / (1 - beta2 ** (step + 1));", "const vHat = v[i];")
    return src


def patch_gist(src, c, steps, tensor_steps, bug):
    for name, value in (("n_embd", c["n_embd"]), ("n_head", c["n_head"]), ("n_layer", c["n_layer"]),
                        ("block_size", c["block_size"]), ("num_steps", steps)):
        src, n = re.subn(rf"^{name} = \d+", f"{name} = {value}", src, flags=re.M)
        assert n == 1, name
    meta = ("import json as _json\n"
            "print(_json.dumps({'meta': {'format': 1, 'implementation': 'microgpt.py (karpathy gist)', "
            "'n_layer': n_layer, 'n_embd': n_embd, 'n_head': n_head, 'block_size': block_size, "
            "'chars': ''.join(uchars), 'steps': num_steps}}))\n"
            "print(_json.dumps({'init': [p.data for p in params]}))\n")
    line = re.search(r"^num_steps = \d+.*\n", src, flags=re.M)
    src = src[:line.end()] + meta + src[line.end():]
    src = sub(src, "    loss.backward()\n", "    loss.backward()\n    _grads = [p.grad for p in params]\n")
    src = sub(src, '    print(f"step {step+1:4d} / {num_steps:4d} | loss {loss.data:.4f}")\n',
              f"    print(_json.dumps({{'step': step + 1, 'doc': doc, 'loss': loss.data, **({{'grads': _grads, "
              f"'params': [p.data for p in params]}} if step < {tensor_steps} else {{}})}}))\n")
    for old, new in EDITS.get(bug, {}).get("gist", []):
        src = sub(src, old, new)
    if bug == "scale":
        src = sub(src, " / head_dim**0.5 for t in", " / 1 for t in")
    elif bug == "exp":
        src = sub(src, "(self,), (math.exp(self.data),))", "(self,), (1,))")
    elif bug == "adam":
        src = sub(src, "m_hat = m[i] / (1 - beta1 ** (step + 1))", "m_hat = m[i]")
        src = sub(src, "v_hat = v[i] / (1 - beta2 ** (step + 1))", "v_hat = v[i]")
    return src


def find_bun(explicit):
    for candidate in (explicit, os.environ.get("BUN"), shutil.which("bun"), ROOT / ".bench" / "node_modules" / ".bin"
                      / "bun"):
        if candidate and Path(candidate).is_file():
            return str(Path(candidate).resolve())
    raise SystemExit("bun not found: `npm install --prefix .bench bun`, or pass --bun PATH (or set $BUN)")


def run_variant(name, bun, gist, scratch):
    program, config, steps, tensor_steps, bug = VARIANTS[name]
    work = scratch / name
    (work / "utils" / "ml").mkdir(parents=True)
    if program == "seed":
        write_corpus(work / "utils" / "ml" / "gptData.txt")  # cwd-relative: the seed never downloads
        src = patch_seed((SHARED / "seed" / "microgpt.ts").read_text(), config, steps, tensor_steps, bug)
        (work / "microgpt.ts").write_text(src)
        cmd = [bun, "run", "microgpt.ts"]
    else:
        write_corpus(work / "input.txt")
        src = patch_gist(Path(gist).read_text(), config, steps, tensor_steps, bug)
        (work / "microgpt.py").write_text(src)
        cmd = [sys.executable, "microgpt.py"]
    done = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=600)
    if done.returncode:
        raise SystemExit(f"{name}: {' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    out = done.stdout
    OUT.mkdir(parents=True, exist_ok=True)
    with gzip.open(OUT / f"{name}.jsonl.gz", "wt", encoding="utf-8", compresslevel=9) as f:
        f.write(out)
    print(f"{name}: {len(out.splitlines())} lines", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bun", help="the bun executable (default: $BUN, PATH, .bench/node_modules/.bin/bun)")
    p.add_argument("--microgpt-py", help="a public copy of Karpathy's microgpt.py (default: $MICROGPT_PY)")
    p.add_argument("--only", help="comma-separated variant names (default: all)")
    args = p.parse_args()
    bun = find_bun(args.bun)
    gist = args.microgpt_py or os.environ.get("MICROGPT_PY")
    names = args.only.split(",") if args.only else list(VARIANTS)
    with tempfile.TemporaryDirectory() as scratch:
        for name in names:
            if VARIANTS[name][0] == "gist" and not (gist and Path(gist).is_file()):
                print(f"{name}: skipped: microgpt.py not found (pass --microgpt-py PATH or set MICROGPT_PY)")
                continue
            run_variant(name, bun, gist, Path(scratch))


if __name__ == "__main__":
    main()
