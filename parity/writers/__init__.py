"""Port-trace writers: one dependency-free file per language, to copy into a port (package data).

Each writes the port-trace format (format 1, parity/sources/porttrace/) with the same calls: open (a path, or "-" for
standard output), meta, init, and per step k from 1: step (doc, loss), grads, params and optionally logits, each
on its own line carrying the step number (the reader merges them), whole arrays or streamed number by number
(begin, value, end). float64 numbers at full round-trip precision, float32 ones (meta dtype "float32") as
float32; nan and inf as NaN, Infinity, -Infinity. A declared variant: facts (weight_decay, grad_clip, norm_eps,
bos, eos) and meta.variant's keys, declared before meta is written, in the order declared; a step may carry the
lr its update used, and a step over several documents writes "docs". A parameter list is one flat array in the
seed's order, or one matrix a call under its name (init, or a step's grads or params; any order: the reader merges
them), so a port that keeps its matrices in a hash map writes them in the map's order.

`parity writer LANG` is this package: `write_writer` copies a writer out, atomically. Imports nothing of parity
(pure.outputs only): microgpt_trace.py is copied into ports as it is.
"""

from importlib import resources
from pathlib import Path

from pure.outputs import atomic_write_bytes

LANGS = {
    "c": ["microgpt_trace.h"],
    "js": ["microgpt_trace.mjs", "microgpt_trace.d.mts"],
    "rust": ["microgpt_trace.rs"],
    "java": ["MicrogptTrace.java"],
    "go": ["microgpt_trace.go"],
    "python": ["microgpt_trace.py"],
}
ALIASES = {"javascript": "js", "typescript": "js", "ts": "js", "node": "js", "rs": "rust", "golang": "go", "h": "c",
           "cpp": "c", "c++": "c", "cxx": "c", "py": "python"}


def _lang(lang):
    name = ALIASES.get(str(lang).lower(), str(lang).lower())
    if name not in LANGS:
        raise ValueError(f"no trace writer for {lang!r}; there is one for {', '.join(LANGS)}")
    return name


def writer_files(lang):
    """[(file name, text)] of the writer for `lang` (c, js, rust, java, go, python; cpp: the C header)."""
    here = resources.files(__name__)
    return [(name, here.joinpath(name).read_text(encoding="utf-8")) for name in LANGS[_lang(lang)]]


def write_writer(lang, out_dir, force=False):
    """Write the writer's files into out_dir (created if missing); returns their paths. A file already there with
    other contents is refused (ValueError) unless force=True; each file goes to a temporary file beside it, then
    is renamed, so no half-written file is ever left."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"{out_dir} is not a folder")
    files = [(out_dir / name, text.encode("utf-8")) for name, text in writer_files(lang)]
    for target, data in files:
        if target.is_dir():
            raise ValueError(f"{target} is a folder")
        if target.exists() and not force and target.read_bytes() != data:
            raise ValueError(f"{target} exists and differs from the {_lang(lang)} trace writer; pass --force to "
                             f"overwrite it")
    for target, data in files:
        atomic_write_bytes(target, data)
    return [target for target, _ in files]


def main(argv=None):
    """LANG [-o DIR] [--force]: write a trace writer's files (for testing; the command is `parity writer`)."""
    import argparse
    import sys

    p = argparse.ArgumentParser(prog="parity.writers.main", description=main.__doc__)
    p.add_argument("lang", help=", ".join(LANGS))
    p.add_argument("-o", "--out", default=".", help="folder to write into (default: here)")
    p.add_argument("--force", action="store_true", help="overwrite a different file of the same name")
    args = p.parse_args(argv)
    try:
        for path in write_writer(args.lang, args.out, force=args.force):
            print(path)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
