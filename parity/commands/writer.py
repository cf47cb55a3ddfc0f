"""`parity writer LANG`: the port-trace writer for a language (parity/writers/, package data) written into a
folder, without half-written files."""

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
    here = resources.files("parity.writers")
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
