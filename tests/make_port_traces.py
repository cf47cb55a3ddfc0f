"""Regenerate tests/fixtures/ports/*.jsonl.gz: port traces written by real programs no one here wrote.

    python tests/make_port_traces.py [--bun PATH] [--microgpt-py PATH] [--gist-history PATH] [--ports PATH]
                                     [--undeclared DIR] [--only NAMES]

Copies the seed program (../shared/seed/microgpt.ts, run under bun) and Karpathy's microgpt.py (a public copy
fetched into a git-ignored folder: --microgpt-py PATH or $MICROGPT_PY; without it the gist variants are skipped,
saying so) into a scratch folder, patches in only the print lines of the port-trace
format (and, per variant, a config or one deliberate bug), gives them the project's synthetic corpus
(pure/corpus.py: never the names data, since a trace holds the documents), runs them and keeps what they
print. Nothing of their code is committed: only these traces, the figures they printed.

The `variant_*` group (issue 28) runs programs that deviate from the final gist ON PURPOSE: Karpathy's own earlier
revisions of microgpt.py (relu(x)^2, Adam betas 0.9/0.95, a cosine lr, BOS as id 0, tied embeddings; the gist's
history is public in a fork: --gist-history PATH or $MICROGPT_GIST_HISTORY, a bare git dir of it or a folder of
<hash>.py files) and published ports (--ports PATH or $MICROGPT_PORTS: a folder holding OWNER+NAME/<path in repo>,
or OWNER+NAME/repo or OWNER+NAME as a bare git dir, such as the `fetch` tool's mirror folder). Each is patched with
the print lines only: meta with the program's own facts (lr, betas, eps, steps, weight decay, clip, bos/eos) and a
`variant` object declaring exactly its deviations, on a small config. --undeclared DIR also writes each such trace
with meta.variant removed (the same numbers, undeclared), for trying the judge both ways.
"""

import argparse
import gzip
import json
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
    out = run_and_keep(name, cmd, work)
    print(f"{name}: {len(out.splitlines())} lines", flush=True)


def run_and_keep(name, cmd, work):
    """Run the patched program in `work` and keep what it prints as OUT/<name>.jsonl.gz; its output."""
    done = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=600)
    if done.returncode:
        raise SystemExit(f"{name}: {' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    OUT.mkdir(parents=True, exist_ok=True)
    with gzip.open(OUT / f"{name}.jsonl.gz", "wt", encoding="utf-8", compresslevel=9) as f:
        f.write(done.stdout)
    return done.stdout


# ---- variant_*: programs that deviate from the final gist on purpose (issue 28) ------------------------------------
# name: (source, patch, steps, steps with tensors). A source is ("gist", revision): microgpt.py at that revision of
# the gist's history, or ("port", "OWNER+NAME", commit, path): a published port. Of the gist's history, every
# revision whose arithmetic differs from the final one is here (the others changed comments, flags or prints).
DEVIATING = {
    # 2026-02-11, the first revision: BOS 0 and EOS 1 apart, lm_head tied to wte, relu^2, betas 0.9/0.95; also, not
    # declarable: no rmsnorm after the embedding, and a backward per position (the KV cache's shared nodes pass
    # their gradient on again at each later backward)
    "variant_gist_2d7d2d2c_first": (("gist", "2d7d2d2c9b32b27282bb572ca72224f5c3d5c120"), "gist_first", 8, 3),
    # 2026-02-11: BOS 0 only, lm_head untied, relu^2, betas 0.9/0.95, the linear lr (argparse flags)
    "variant_gist_b4ddd362_relu2_betas": (("gist", "b4ddd3620318bcc695a83effe4d5aca624356aae"), "gist_bos0", 8, 3),
    # 2026-02-12: the final tokenizer (BOS last), relu^2, betas 0.9/0.95, a cosine lr
    "variant_gist_9cdb8119_cosine": (("gist", "9cdb81197130b7f9aaebd86e56de41ede4da5b85"), "gist_cosine", 8, 3),
    # NJX-njx/microgpt (fetched as its fork vaibhavnegi123/microgpt), Python: BOS 0, tied embeddings, relu^2,
    # betas 0.9/0.95, a cosine lr, AdamW weight decay 1e-4, gradient clipping at global norm 1
    "variant_port_njx_cosine_clip_tied": (
        ("port", "vaibhavnegi123+microgpt", "f908a19fad2e2b1dacb07723d238d45378365ce5", "microgpt.py"), "njx", 8, 3),
    # danilop/micro-gpt-and-beyond 04_pytorch_batched (PyTorch, float32): several documents a step; its first
    # version also relu^2, betas 0.9/0.95, a cosine lr; its latest otherwise the final gist's
    "variant_port_danilop_batched_first": (
        ("port", "danilop+micro-gpt-and-beyond", "64a61de141c62e821af084f4ae5fc359cf8160a1",
         "04_pytorch_batched/main.py"), "danilop_first", 6, 3),
    "variant_port_danilop_batched": (
        ("port", "danilop+micro-gpt-and-beyond", "345b812dc30a4409cc725ae441fcd2685b9fb80e",
         "labs/04_pytorch_batched/main.py"), "danilop", 6, 3),
    # MeKo-Christian/go-microgpt, its --fast path (tensor_train.go), Go, float32: documents drawn with replacement,
    # several a step, cut to block_size tokens; rmsnorm's eps 1e-8; the lr decay reads the 1-indexed step
    # (lr(1 - (t+1)/steps)), declared as the custom schedule its step lines carry. The whole package is built (go)
    "variant_port_meko_fast_go": (("port", "MeKo-Christian+go-microgpt", "e853ff55e61095a358a91de9aceb84b6b74bace4",
                                   "."), "meko_go", 6, 3),
}
# What each program declares (the keys that differ from microgpt's; numbers are the program's own variables)
# and the facts it reports; `chars` is the vocabulary without BOS (and EOS) in id order.
_PY_META = ("import json as _json\n"
            "print(_json.dumps({{'meta': {{'format': 1, 'implementation': {impl!r}, 'n_layer': n_layer, "
            "'n_embd': n_embd, 'n_head': n_head, 'block_size': block_size, 'chars': {chars}, 'steps': {steps}, "
            "'lr': {lr}, 'beta1': {beta1}, 'beta2': {beta2}, 'eps': {eps}, {facts}'variant': {variant}}}}}))\n"
            "print(_json.dumps({{'init': {flat}}}))\n")
_PY_STEP = ("{indent}print(_json.dumps({{'step': step + 1, {what}, 'loss': {loss}, 'lr': {lr}, **({{'grads': _grads, "
            "'params': {flat}}} if step < {tensor_steps} else {{}})}}))\n")


def _config_lines(src, config, steps, names=("n_embd", "n_head", "n_layer", "block_size", "num_steps")):
    values = dict(config, num_steps=steps)
    for name in names:
        src, n = re.subn(rf"^{name} = \d+", f"{name} = {values[name]}", src, flags=re.M)
        assert n == 1, name
    return src


def patch_deviating(src, patch, name, steps, tensor_steps):
    """The print lines of the port-trace format (and the small config) patched into one deviating program."""
    c = SMALL
    impl = f"{name[len('variant_'):]} (public code, print lines patched in)"
    flat = "[p.data for p in params]"
    if patch in ("gist_first", "gist_bos0"):  # argparse: the config comes from the command line
        betas = "'beta1': beta1, 'beta2': beta2"
        if patch == "gist_first":
            meta = _PY_META.format(impl=impl, chars="''.join(chars[2:])", steps="args.num_steps",
                                   lr="learning_rate", beta1="beta1", beta2="beta2", eps="eps_adam",
                                   facts="'bos': BOS, 'eos': EOS, ", flat=flat,
                                   variant=f"{{'activation': 'relu2', {betas}, 'tie_embeddings': True}}")
        else:
            meta = _PY_META.format(impl=impl, chars="''.join(chars[1:])", steps="args.num_steps",
                                   lr="learning_rate", beta1="beta1", beta2="beta2", eps="eps_adam",
                                   facts="'bos': BOS, ", flat=flat, variant=f"{{'activation': 'relu2', {betas}}}")
        src = sub(src, "v = [0.0] * len(params) # second moment\n", "v = [0.0] * len(params) # second moment\n" + meta)
        if patch == "gist_first":  # one backward per position: the gradients are complete before the update
            src = sub(src, "    # Adam update (optimizer)\n", "    _grads = [p.grad for p in params]\n"
                      "    # Adam update (optimizer)\n")
            step = _PY_STEP.format(indent="    ", what="'tokens': tokens", loss="lossf", lr="lr_t", flat=flat,
                                   tensor_steps=tensor_steps)
            src = sub(src, '    print(f"step {step+1} / {args.num_steps} | loss {lossf:.4f}")\n', step)
        else:
            src = sub(src, "    loss.backward()\n", "    loss.backward()\n    _grads = [p.grad for p in params]\n")
            step = _PY_STEP.format(indent="    ", what="'doc': doc", loss="loss.data", lr="lr_t", flat=flat,
                                   tensor_steps=tensor_steps)
            src = sub(src, '    print(f"step {step+1} / {args.num_steps} | loss {loss.data:.4f}")\n', step)
        return src
    if patch in ("gist_cosine", "njx"):
        src = _config_lines(src, c, steps)
        if patch == "gist_cosine":
            meta = _PY_META.format(impl=impl, chars="''.join(uchars)", steps="num_steps", lr="learning_rate",
                                   beta1="beta1", beta2="beta2", eps="eps_adam", facts="", flat=flat,
                                   variant="{'activation': 'relu2', 'lr_schedule': 'cosine', 'beta1': beta1, "
                                           "'beta2': beta2}")
            progress = '    print(f"step {step+1:4d} / {num_steps:4d} | loss {loss.data:.4f}")\n'
        else:
            meta = _PY_META.format(impl=impl, chars="''.join(chars[1:])", steps="num_steps", lr="learning_rate",
                                   beta1="beta1", beta2="beta2", eps="eps_adam", flat=flat,
                                   facts="'bos': BOS, 'weight_decay': weight_decay, 'grad_clip': max_grad_norm, "
                                         "'grad_clip_eps': 0, ",  # it scales by max_norm / norm
                                   variant="{'activation': 'relu2', 'lr_schedule': 'cosine', 'beta1': beta1, "
                                           "'beta2': beta2, 'weight_decay': weight_decay, 'grad_clip': max_grad_norm, "
                                           "'grad_clip_eps': 0, 'tie_embeddings': True}")
            progress = ('    print(f"step {step+1:4d}/{num_steps:4d} | loss {loss.data:.4f} | '
                        '{(time.time()-t0)*1000:.0f}ms")\n')
        line = re.search(r"^num_steps = \d+.*\n", src, flags=re.M)
        src = src[:line.end()] + meta + src[line.end():]
        # the gradients as backward left them (before the clipping, which the judge applies as declared)
        src = sub(src, "    loss.backward()\n", "    loss.backward()\n    _grads = [p.grad for p in params]\n")
        step = _PY_STEP.format(indent="    ", what="'doc': doc", loss="loss.data", lr="lr_t", flat=flat,
                               tensor_steps=tensor_steps)
        return sub(src, progress, step)
    if patch in ("danilop", "danilop_first"):  # torch, float32, a batch of documents a step (wte's PAD row unused)
        src = _config_lines(src, dict(c, batch_size=4), steps,
                            names=("n_embd", "n_head", "n_layer", "block_size", "batch_size", "num_steps"))
        src, n = re.subn(r"^input_path = .*$", "input_path = 'input.txt'", src, flags=re.M)
        assert n == 1, "input_path"
        flat_fn = ("def _flat(get):\n"
                   "    mats = [model.wte, model.wpe, model.lm_head] + [m for L in model.layers for m in (L.attn.wq, "
                   "L.attn.wk, L.attn.wv, L.attn.wo, L.mlp.fc1, L.mlp.fc2)]\n"
                   "    out = []\n"
                   "    for i, m in enumerate(mats):\n"
                   "        w = get(m.weight)\n"
                   "        out += (w[:vocab_size] if i == 0 else w).reshape(-1).tolist()\n"
                   "    return out\n")
        group = "optimizer.param_groups[0]"
        meta = flat_fn + _PY_META.format(
            impl=impl, chars="''.join(uchars)", steps="num_steps", lr=f"{group}['lr']", beta1=f"{group}['betas'][0]",
            beta2=f"{group}['betas'][1]", eps=f"{group}['eps']", facts="'dtype': 'float32', ",
            flat="_flat(lambda w: w.detach())",
            variant=("{'docs_per_step': batch_size}" if patch == "danilop" else
                     f"{{'docs_per_step': batch_size, 'activation': 'relu2', 'lr_schedule': 'cosine', "
                     f"'beta1': {group}['betas'][0], 'beta2': {group}['betas'][1]}}"))
        opt = re.search(r"^optimizer = torch\.optim\.Adam\(.*\)\n", src, flags=re.M)
        src = src[:opt.end()] + meta + src[opt.end():]
        src = sub(src, "    loss.backward()\n", "    loss.backward()\n    _grads = _flat(lambda w: w.grad)\n")
        docs = "'docs': [docs[(step * batch_size + i) % len(docs)] for i in range(batch_size)]"
        step = _PY_STEP.format(indent="    ", what=docs, loss="loss.item()", lr="lr_t",
                               flat="_flat(lambda w: w.detach())", tensor_steps=tensor_steps)
        src = sub(src, "    optimizer.step()\n", "    optimizer.step()\n" + step)
        return src
    raise ValueError(patch)


# The Go port's trace lines: a file of its own in the package (the numbers as float32, 'g' -1 32), three calls in
# TensorTrain, and a driver doing cmd/microgpt's --fast path (seed 42, its shuffle) on the small config without cobra.
_GO_TRACE = r"""package microgpt

import (
	"fmt"
	"strconv"
	"strings"
)

func traceNum(x float32) string { return strconv.FormatFloat(float64(x), 'g', -1, 32) }

func traceFlat(mats ...[]float32) string {
	var parts []string
	for _, m := range mats {
		for _, x := range m {
			parts = append(parts, traceNum(x))
		}
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func traceParams(m *TensorModel) string {
	return traceFlat(m.TokEmb, m.PosEmb, m.Wlm, m.Wq, m.Wk, m.Wv, m.Wo, m.Wf1, m.Wf2)
}

func traceMeta(m *TensorModel, tok *Tokenizer, opts TrainOptions) {
	c := m.Cfg
	fmt.Printf("{\"meta\": {\"format\": 1, \"implementation\": %s, \"n_layer\": 1, \"n_embd\": %d, "+
		"\"n_head\": %d, \"block_size\": %d, \"chars\": %s, \"steps\": %d, \"lr\": %v, \"beta1\": %v, "+
		"\"beta2\": %v, \"eps\": %v, \"norm_eps\": 1e-8, \"dtype\": \"float32\", \"variant\": "+
		"{\"docs_per_step\": %d, \"lr_schedule\": \"custom\", \"norm_eps\": 1e-8}}}\n", strconv.Quote(IMPL),
		c.DModel, c.NHeads, c.BlockSize, strconv.Quote(string(tok.Chars)), opts.NumSteps, opts.LearningRate,
		opts.Beta1, opts.Beta2, opts.EpsAdam, c.Batch)
	fmt.Printf("{\"init\": %s}\n", traceParams(m))
}

func traceStep(step int, toks [][]int, loss float32, lr float32, grads string, m *TensorModel, tensorSteps int) {
	var docs []string
	for _, t := range toks {
		var ids []string
		for _, id := range t {
			ids = append(ids, strconv.Itoa(id))
		}
		docs = append(docs, "["+strings.Join(ids, ", ")+"]")
	}
	extra := ""
	if step < tensorSteps {
		extra = ", \"grads\": " + grads + ", \"params\": " + traceParams(m)
	}
	fmt.Printf("{\"step\": %d, \"tokens\": [%s], \"loss\": %s, \"lr\": %s%s}\n", step+1, strings.Join(docs, ", "),
		traceNum(loss), traceNum(lr), extra)
}
"""
_GO_MAIN = """package main

import (
	"math/rand"

	microgpt "go-microgpt"
)

func main() {
	rng := rand.New(rand.NewSource(42))
	docs, err := microgpt.LoadDocs("input.txt")
	if err != nil {
		panic(err)
	}
	microgpt.ShuffleStrings(rng, docs)
	tok := microgpt.NewTokenizer(docs)
	cfg := microgpt.TensorConfig{DModel: N_EMBD, NHeads: N_HEAD, DFF: 4 * N_EMBD, VocabSize: tok.VocabSize(),
		BlockSize: BLOCK_SIZE, Batch: BATCH}
	tm := microgpt.NewTensorModel(cfg, rng)
	opts := microgpt.DefaultTrainOptions()
	opts.NumSteps = STEPS
	if err := microgpt.TensorTrain(tm, tok, docs, opts, nil); err != nil {
		panic(err)
	}
}
"""


def _go_env(work):
    return dict(os.environ, GOFLAGS="-mod=mod", GOPROXY="off", GOPATH=str(work / ".gopath"),
                GOCACHE=str(work / ".gocache"), GOTOOLCHAIN="local")


def go_downgrade(pkg, work):
    """Let a Go toolchain older than 1.22 build the package: only the loops `go build` reports as ranging over an
    int become counted loops, and the min builtin a generic helper (no closure captures a loop variable there)."""
    for _ in range(10):
        done = subprocess.run(["go", "build", "-gcflags=-e", "."], cwd=pkg, capture_output=True, text=True,
                              env=_go_env(work))
        if done.returncode == 0:
            return
        errors = re.findall(r"^\./(\S+?\.go):(\d+):\d+: (.*)$", done.stderr, flags=re.M)
        if not errors:
            raise SystemExit(f"go build failed:\n{done.stderr[-2000:]}")
        for file, line, message in errors:
            ranged = re.match(r"cannot range over (.+) \((?:variable|value) of type int\)", message)
            if message in ("undefined: min", "undefined: max"):
                (pkg / "zz_go119_builtins.go").write_text(
                    "package microgpt\n\ntype ordered interface{ ~int | ~float32 | ~float64 }\n\n"
                    "func min[T ordered](a, b T) T {\n\tif b < a {\n\t\treturn b\n\t}\n\treturn a\n}\n\n"
                    "func max[T ordered](a, b T) T {\n\tif b > a {\n\t\treturn b\n\t}\n\treturn a\n}\n")
                continue
            if not ranged:
                raise SystemExit(f"go build failed:\n{done.stderr[-2000:]}")
            expr, lines = ranged.group(1), (pkg / file).read_text().split("\n")
            i = int(line) - 1
            lines[i], n = re.subn(rf"for (\w+) := range {re.escape(expr)} \{{",
                                  lambda m, e=expr: f"for {m[1]} := 0; {m[1]} < {e}; {m[1]}++ {{", lines[i])
            if not n:  # `for range n {`
                lines[i], n = re.subn(rf"for range {re.escape(expr)} \{{", f"for i_ := 0; i_ < {expr}; i_++ {{",
                                      lines[i])
            assert n == 1, (file, line)
            (pkg / file).write_text("\n".join(lines))
    raise SystemExit("go build: the downgrade did not converge")


def build_meko_go(pkg, work, name, steps, tensor_steps):
    """Patch the trace lines into go-microgpt's TensorTrain, build a driver; returns the command to run."""
    if not shutil.which("go"):
        raise SystemExit(f"{name}: go not found (a Go toolchain builds this port)")
    shutil.rmtree(pkg / "cmd", ignore_errors=True)  # cobra's CLI: the driver below does its --fast path
    mod = (pkg / "go.mod").read_text()
    (pkg / "go.mod").write_text(mod.split("\nrequire")[0] + "\n")  # no dependency is left without cmd/
    version = subprocess.run(["go", "env", "GOVERSION"], capture_output=True, text=True).stdout.strip()
    minor = re.match(r"go1\.(\d+)", version)
    if minor and int(minor[1]) < 22:
        (pkg / "go.mod").write_text(re.sub(r"^go 1\.\d+.*$", f"go 1.{minor[1]}", (pkg / "go.mod").read_text(),
                                           flags=re.M))
        go_downgrade(pkg, work)
    f = pkg / "tensor_train.go"
    src = f.read_text()
    loop = re.search(r"\trng := rand\.New\(rand\.NewSource\(42\)\)\n\n\tfor step := .*\{\n", src)
    src = (src[:loop.start()] + "\trng := rand.New(rand.NewSource(42))\n\ttraceMeta(m, tokenizer, opts)\n\n"
           + loop[0].split("\n\n")[1] + "\t\tvar traceToks [][]int\n" + src[loop.end():])
    src = sub(src, "\t\t\tc.SeqLens[b] = seqLen\n",
              "\t\t\tc.SeqLens[b] = seqLen\n\t\t\ttraceToks = append(traceToks, tokens[:seqLen])\n")
    src = sub(src, "\t\tBackward(m, c, g)\n\n\t\t// Adam step (1-indexed)\n"
                   "\t\tadam.Step(paramSlices, gradSlices, step+1, opts.NumSteps)\n",
              "\t\tBackward(m, c, g)\n\t\ttraceGrads := traceFlat(g.TokEmb, g.PosEmb, g.Wlm, g.Wq, g.Wk, g.Wv, g.Wo, "
              "g.Wf1, g.Wf2)\n\n\t\t// Adam step (1-indexed)\n"
              "\t\tadam.Step(paramSlices, gradSlices, step+1, opts.NumSteps)\n"
              "\t\ttraceStep(step, traceToks, loss, adam.LR*(1.0-float32(step+1)/float32(opts.NumSteps)), traceGrads, "
              f"m, {tensor_steps})\n")
    f.write_text(src)
    impl = f"{name[len('variant_'):]} (public code, print lines patched in)"
    (pkg / "zz_trace.go").write_text(_GO_TRACE.replace("IMPL", json.dumps(impl)))
    (pkg / "cmd" / "trace").mkdir(parents=True)
    main = _GO_MAIN
    for key, value in (("N_EMBD", SMALL["n_embd"]), ("N_HEAD", SMALL["n_head"]), ("BLOCK_SIZE", SMALL["block_size"]),
                       ("BATCH", 4), ("STEPS", steps)):
        main = main.replace(key, str(value))
    (pkg / "cmd" / "trace" / "main.go").write_text(main)
    done = subprocess.run(["go", "build", "-o", str(work / "microgpt_trace"), "./cmd/trace"], cwd=pkg,
                          capture_output=True, text=True, env=_go_env(work))
    if done.returncode:
        raise SystemExit(f"{name}: go build failed:\n{done.stderr[-2000:]}")
    return [str(work / "microgpt_trace")]


def _git_dir(path):
    """`path` itself or its `repo` or `.git` folder when that is a git directory, else None."""
    for candidate in (path, path / "repo", path / ".git"):
        if (candidate / "objects").is_dir() and (candidate / "HEAD").is_file():
            return candidate
    return None


def read_deviating(source, gist_history, ports):
    """(text, None) of a deviating program's public copy, or (None, why it is not at hand)."""
    if source[0] == "gist":
        rev, path, base, flag = source[1], "microgpt.py", gist_history, "--gist-history PATH or $MICROGPT_GIST_HISTORY"
        files = [f"{rev}.py", f"{rev[:8]}.py"]
    else:
        _, key, rev, path = source
        base, flag = ports and Path(ports) / key, "--ports PATH or $MICROGPT_PORTS"
        files = [path]
    if not base or not Path(base).exists():
        return None, f"{'the gist history' if source[0] == 'gist' else source[1]} not found (pass {flag})"
    base = Path(base)
    if path == ".":  # a whole package: (the folder to copy, None) or (the git dir to archive, None)
        return (base, None) if (base / "go.mod").is_file() else (_git_dir(base), None) if _git_dir(base) else \
            (None, f"{source[1]} at {rev[:8]} not found under {base}")
    for f in files:
        if (base / f).is_file():
            return (base / f).read_text(), None
    git = _git_dir(base)
    if git:
        done = subprocess.run(["git", "--git-dir", str(git), "show", f"{rev}:{path}"], capture_output=True, text=True)
        if done.returncode == 0:
            return done.stdout, None
        return None, f"git show {rev[:8]}:{path} failed in {git}: {done.stderr.strip()[:200]}"
    return None, f"{path} at {rev[:8]} not found under {base}"


def strip_variant(out):
    """The same trace with meta.variant removed: the deviations undeclared."""
    lines = out.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.startswith('{"meta"'):
            record = json.loads(line)
            record["meta"].pop("variant", None)
            lines[i] = json.dumps(record) + "\n"
            break
    return "".join(lines)


def run_deviating(name, text, scratch, undeclared):
    source, patch, steps, tensor_steps = DEVIATING[name]
    work = scratch / name
    work.mkdir(parents=True)
    write_corpus(work / "input.txt")
    if patch == "meko_go":  # a Go package: `text` is its folder, or the git dir to archive it from
        pkg = work / "pkg"
        if (text / "go.mod").is_file():
            shutil.copytree(text, pkg)
        else:
            pkg.mkdir()
            archive = subprocess.run(["git", "--git-dir", str(text), "archive", source[2]], capture_output=True)
            if archive.returncode:
                raise SystemExit(f"{name}: git archive failed: {archive.stderr.decode()[-500:]}")
            subprocess.run(["tar", "-x", "-C", str(pkg)], input=archive.stdout, check=True)
        cmd = build_meko_go(pkg, work, name, steps, tensor_steps)
    else:
        (work / "microgpt.py").write_text(patch_deviating(text, patch, name, steps, tensor_steps))
        cmd = [sys.executable, "microgpt.py"]
    if patch in ("gist_first", "gist_bos0"):  # its config is argparse's
        cmd += [f"--{k}={v}" for k, v in dict(SMALL, num_steps=steps).items()]
    out = run_and_keep(name, cmd, work)
    if undeclared:
        Path(undeclared).mkdir(parents=True, exist_ok=True)
        with gzip.open(Path(undeclared) / f"{name}.undeclared.jsonl.gz", "wt", encoding="utf-8", compresslevel=9) as f:
            f.write(strip_variant(out))
    print(f"{name}: {len(out.splitlines())} lines", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bun", help="the bun executable (default: $BUN, PATH, .bench/node_modules/.bin/bun)")
    p.add_argument("--microgpt-py", help="a public copy of Karpathy's microgpt.py (default: $MICROGPT_PY)")
    p.add_argument("--gist-history", help="the gist's history: a bare git dir of it, or a folder of <hash>.py files "
                                          "(default: $MICROGPT_GIST_HISTORY); for the variant_gist_* traces")
    p.add_argument("--ports", help="fetched public ports: a folder of OWNER+NAME/<path>, or of OWNER+NAME git dirs "
                                   "(default: $MICROGPT_PORTS); for the variant_port_* traces")
    p.add_argument("--undeclared", metavar="DIR", help="also write each variant_* trace without meta.variant to DIR")
    p.add_argument("--only", help="comma-separated variant names (default: all)")
    args = p.parse_args()
    gist = args.microgpt_py or os.environ.get("MICROGPT_PY")
    history = args.gist_history or os.environ.get("MICROGPT_GIST_HISTORY")
    ports = args.ports or os.environ.get("MICROGPT_PORTS")
    names = args.only.split(",") if args.only else list(VARIANTS) + list(DEVIATING)
    unknown = [n for n in names if n not in VARIANTS and n not in DEVIATING]
    if unknown:
        raise SystemExit(f"unknown variant {unknown[0]!r}; the variants are "
                         f"{', '.join(list(VARIANTS) + list(DEVIATING))}")
    bun = find_bun(args.bun) if any(n in VARIANTS and VARIANTS[n][0] == "seed" for n in names) else None
    with tempfile.TemporaryDirectory() as scratch:
        for name in names:
            if name in DEVIATING:
                text, why = read_deviating(DEVIATING[name][0], history, ports)
                if text is None:
                    print(f"{name}: skipped: {why}")
                    continue
                run_deviating(name, text, Path(scratch), args.undeclared)
                continue
            if VARIANTS[name][0] == "gist" and not (gist and Path(gist).is_file()):
                print(f"{name}: skipped: microgpt.py not found (pass --microgpt-py PATH or set MICROGPT_PY)")
                continue
            run_variant(name, bun, gist, Path(scratch))

if __name__ == "__main__":
    main()
