"""A user's own Value class (`--value SPEC`): loading it, checking that it follows the protocol, running it.

SPEC is `module:Class` (imported with importlib, e.g. `mypkg.engine:Value`) or
`path/to/file.py:Class` (loaded from that file). The protocol is micrograd's:
`Class(data)`, `.data`, `.grad`; `+ - * /` and their reflected forms with
numbers; `**` with a constant exponent; unary `-`; `.exp()`, `.log()`,
`.relu()`, `.backward()`. Every error is a ValueError with a one-line message.
"""

import importlib
import importlib.util
import os
import re
import sys
import traceback

REQUIRED_ATTRIBUTES = ("data", "grad")
REQUIRED_METHODS = ("__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__",
                    "__rtruediv__", "__pow__", "__neg__", "exp", "log", "relu", "backward")
PROTOCOL = ("Class(data), .data, .grad, + - * / with Values and numbers (both sides), ** constant, unary -, "
            ".exp(), .log(), .relu(), .backward()")
# What pure.model's forward and the loss call (a Value on the left of every operator): `parity run` needs these.
MODEL_METHODS = ("__add__", "__sub__", "__mul__", "__truediv__", "__pow__", "__neg__", "exp", "log", "relu",
                 "backward")
MODEL_NEEDS = "+ - * / with Values and numbers, ** a number, unary -, .exp(), .log(), .relu(), .backward()"
# What `parity ops` needs to check anything at all: the rows are built from + and * and read through .backward();
# whatever else the class lacks reads `absent` (the model needs it) or `n/a` (optional: EXTRA_METHODS below).
OPS_METHODS = ("__add__", "__mul__", "backward")

# The model's uses of the protocol, tried on the class (a Value a = cls(1.5), b = cls(0.5)), so that a refusal names
# every method the model will need at once, those the class's own operators call included (its __sub__ calling
# __neg__ or __rmul__).
MODEL_TRIES = (
    ("a + b", lambda a, b: a + b), ("a + 2", lambda a, b: a + 2.0), ("2 + a", lambda a, b: 2.0 + a),
    ("a - b", lambda a, b: a - b), ("a - 2", lambda a, b: a - 2.0), ("2 - a", lambda a, b: 2.0 - a),
    ("a * b", lambda a, b: a * b), ("a * 2", lambda a, b: a * 2.0), ("2 * a", lambda a, b: 2.0 * a),
    ("a / b", lambda a, b: a / b), ("a / 2", lambda a, b: a / 2.0), ("2 / a", lambda a, b: 2.0 / a),
    ("a ** 2", lambda a, b: a ** 2), ("a ** -0.5", lambda a, b: a ** -0.5), ("-a", lambda a, b: -a),
    ("a.exp()", lambda a, b: a.exp()), ("a.log()", lambda a, b: a.log()), ("a.relu()", lambda a, b: a.relu()),
)
_OPERATORS = {"+": ("__add__", "__radd__"), "-": ("__sub__", "__rsub__"), "*": ("__mul__", "__rmul__"),
              "/": ("__truediv__", "__rtruediv__"), "** or pow()": ("__pow__", "__rpow__")}


def lacking_method(exc, cls=None):
    """The method a TypeError / AttributeError says the class lacks, or None."""
    text = str(exc)
    m = re.search(r"has no attribute '(\w+)'", text)
    if m:
        return m.group(1)
    if "bad operand type for unary -" in text:
        return "__neg__"
    m = re.search(r"unsupported operand type\(s\) for (.+?): '(\w+)' and '(\w+)'", text)
    if m and m.group(1) in _OPERATORS:
        forward, reflected = _OPERATORS[m.group(1)]
        numbers = ("int", "float")
        return reflected if m.group(2) in numbers and (cls is None or m.group(3) == cls.__name__) else forward
    return None


def tried_protocol(cls):
    """[(what the model does, the method it lacks or None, what it raised)] for every use of MODEL_TRIES that
    raises a TypeError or AttributeError on the class."""
    try:
        a, b = cls(1.5), cls(0.5)
    except Exception:  # noqa: BLE001 - check_protocol says why
        return []
    out = []
    for what, f in MODEL_TRIES:
        try:
            f(a, b)
        except (TypeError, AttributeError) as e:
            out.append((what, lacking_method(e, cls), _one_line(e)))
        except Exception:  # noqa: BLE001 - a wrong value (log of a negative, ...) is for `ops` to judge
            pass
    return out


def _one_line(exc):
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _load_file(path, spec_text):
    if os.path.isdir(path):
        raise ValueError(f"--value {spec_text}: {path!r} is a folder; name the .py file that defines the class, "
                         f"e.g. {os.path.join(path, 'engine.py')}:Value")
    if not os.path.isfile(path):
        raise ValueError(f"--value {spec_text}: no such file {path!r}")
    stem = re.sub(r"\W", "_", os.path.splitext(os.path.basename(path))[0])
    name = f"_parity_user_engine_{stem}_{abs(hash(os.path.abspath(path))):x}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ValueError(f"--value {spec_text}: cannot load {path!r} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look modules up here
    folder = os.path.dirname(os.path.abspath(path))
    added = folder not in sys.path
    if added:  # so that the file can import its own siblings
        sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        sys.modules.pop(name, None)
        raise ValueError(f"--value {spec_text}: importing {path} failed: {_one_line(e)}") from None
    finally:
        if added:
            sys.path.remove(folder)
    return module


def _load_module(module_name, spec_text):
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and (module_name == e.name or module_name.startswith(e.name + ".")):
            raise ValueError(f"--value {spec_text}: no module named {module_name!r} "
                             f"(give module:Class importable from here, or path/to/file.py:Class)") from None
        raise ValueError(f"--value {spec_text}: importing {module_name} failed: {_one_line(e)}") from None
    except Exception as e:
        raise ValueError(f"--value {spec_text}: importing {module_name} failed: {_one_line(e)}") from None


def parse_spec(spec):
    """(where, class name, whether `where` is a file) of `module:Class` or `path/to/file.py:Class`, checked without
    importing anything (the judge never imports a user's file: parity.worker does); ValueError (one line)."""
    spec = str(spec).strip()
    if not spec:
        raise ValueError("--value was given an empty spec; give path/to/file.py:Class or module:Class, or leave "
                         "--value out")
    where, sep, class_name = spec.rpartition(":")
    if not sep and os.path.isdir(spec):
        raise ValueError(f"--value {spec}: {spec!r} is a folder; name the .py file that defines the class and the "
                         f"class, e.g. {os.path.join(spec, 'engine.py')}:Value")
    if not sep or not where or not class_name:
        raise ValueError(f"--value {spec!r}: expected module:Class or path/to/file.py:Class")
    if not class_name.isidentifier():
        raise ValueError(f"--value {spec}: {class_name!r} is not a class name")
    is_file = where.endswith(".py") or os.sep in where or "/" in where
    if is_file:
        if os.path.isdir(where):
            raise ValueError(f"--value {spec}: {where!r} is a folder; name the .py file that defines the class, "
                             f"e.g. {os.path.join(where, 'engine.py')}:{class_name}")
        if not os.path.isfile(where):
            raise ValueError(f"--value {spec}: no such file {where!r}")
    elif not all(part.isidentifier() for part in where.split(".")):
        raise ValueError(f"--value {spec}: {where!r} is neither a module name nor a path to a .py file")
    return where, class_name, is_file


def load_value_class(spec):
    """The class named by `module:Class` or `path/to/file.py:Class`; ValueError (one line) if it can't be had."""
    spec = str(spec).strip()
    where, class_name, is_file = parse_spec(spec)
    if is_file:
        module = _load_file(where, spec)
    else:
        module = _load_module(where, spec)
    cls = getattr(module, class_name, None)
    if cls is None:
        found = sorted(n for n, v in vars(module).items() if isinstance(v, type) and not n.startswith("_"))
        hint = f" (classes there: {', '.join(found)})" if found else ""
        raise ValueError(f"--value {spec}: {where} has no class {class_name!r}{hint}")
    if not isinstance(cls, type):
        raise ValueError(f"--value {spec}: {class_name!r} in {where} is a {type(cls).__name__}, not a class")
    return cls


def describe(cls):
    return f"{cls.__module__}:{cls.__qualname__}"


# Optional methods `parity ops` checks when a class has them (never required): the common extras tanh and sigmoid,
# and the MLP activations of the declared variants: erf; gelu, GELU's erf form x Phi(x) (torch's F.gelu); gelu_tanh,
# its tanh approximation (F.gelu(approximate="tanh")); silu, x sigmoid(x) (F.silu).
EXTRA_METHODS = ("tanh", "sigmoid", "erf", "gelu", "gelu_tanh", "silu")


def present_methods(cls):
    """The protocol's methods (and the optional EXTRA_METHODS) that instances of cls have."""
    return {m for m in (*REQUIRED_METHODS, *EXTRA_METHODS) if callable(getattr(cls, m, None))}


def check_protocol(cls, name=None, needs=MODEL_METHODS, purpose="run the model", activation="relu"):
    """Instantiate cls(1.5), check .data and .grad and the methods `needs`; ValueError naming what lacks.

    `parity run` needs every op the model calls (MODEL_METHODS), and a declared variant's activation what it calls
    (gelu: .erf(), gelu_tanh: .tanh(), silu: .sigmoid(); pure.variants.activate); `parity ops` only what it weights
    outputs with (OPS_METHODS) and checks whatever else is there.
    """
    name = name or describe(cls)
    short = name.rsplit(":", 1)[-1]
    try:
        v = cls(1.5)
    except Exception as e:
        raise ValueError(f"Value class {name}: {short}(1.5) raised {_one_line(e)}; "
                         f"the protocol needs {PROTOCOL}") from None
    missing = [a for a in REQUIRED_ATTRIBUTES if not hasattr(v, a)]
    missing += [m for m in needs if not callable(getattr(v, m, None))]
    called = []  # what the model does that raises, though the class has the method (its operators call others)
    if needs == MODEL_METHODS:
        for what, lacks, raised in tried_protocol(cls):
            if lacks is not None and lacks not in missing:
                missing.append(lacks)
            if lacks is None or lacks not in needs:
                called.append(f"{what} raised {raised}")
        if activation != "relu":
            from pure.variants import activate

            try:
                activate(cls(0.3), activation)
            except (TypeError, AttributeError) as e:
                lacks = lacking_method(e, cls)
                if lacks is not None and lacks not in missing:
                    missing.append(lacks)
                called.append(f"the variant's activation {activation} raised {_one_line(e)}")
            except Exception:  # noqa: BLE001 - a wrong value is for `ops` to judge
                pass
    if missing or called:
        ops_hint = "" if needs == OPS_METHODS else "; `parity ops --value ...` checks the ops it does have"
        tried = f"; tried: {'; '.join(called)}" if called else ""
        raise ValueError(f"Value class {name} cannot {purpose}: it lacks {', '.join(missing) or 'nothing by name'} "
                         f"(needed: {MODEL_NEEDS if needs == MODEL_METHODS else ', '.join(needs)}){tried}{ops_hint}")
    try:
        data = float(v.data)
    except Exception as e:
        raise ValueError(f"Value class {name}: .data of {short}(1.5) is not a number ({_one_line(e)})") from None
    if data != 1.5:
        raise ValueError(f"Value class {name}: {short}(1.5).data is {v.data!r}, expected 1.5")
    return cls


PURE_VALUE = "pure.engine:Value"


def load_value(spec=None, for_ops=False, activation="relu"):
    """(class, its name) for a --value SPEC, pure's own Value when there is none; ValueError for a bad spec or
    class (for `run`, one that lacks an op the model needs; for `ops`, one that cannot be checked at all)."""
    if spec is None:
        from pure.engine import Value

        return Value, PURE_VALUE
    return load_and_check(spec, for_ops=for_ops, activation=activation), spec


def spec_file(spec):
    """The .py file of path/to/file.py:Class, an input no output may overwrite; None for a module spec."""
    where = (spec or "").rpartition(":")[0]
    return where if where.endswith(".py") else None


def load_and_check(spec, for_ops=False, activation="relu"):
    """load_value_class + check_protocol (for `run`, or the lighter check of `ops`), naming SPEC as written."""
    cls = load_value_class(spec)
    if for_ops:
        return check_protocol(cls, name=str(spec).strip(), needs=OPS_METHODS, purpose="be checked op by op")
    return check_protocol(cls, name=str(spec).strip(), activation=activation)


class ValueClassError(Exception):
    """The Value class under test raised while running the model: a finding about that class, not a crash.

    phase is "forward", "backward", "optimizer" or "samples"; exception is the one-line text of what it raised.
    """

    def __init__(self, phase, exc):
        self.phase = phase
        self.exception = _one_line(exc)
        frames = traceback.extract_tb(exc.__traceback__)
        # where it was raised: the innermost frame, which for a user's engine is a line of their own file
        last = frames[-1] if frames else None
        self.where = f"{os.path.basename(last.filename)}:{last.lineno}, in {last.name}" if last else ""
        self.recursion = isinstance(exc, RecursionError)
        if self.recursion:
            self.exception += (f" (Python's recursion limit is {sys.getrecursionlimit()}: a recursive "
                               f"{'topological sort' if phase == 'backward' else 'call'} cannot go deeper than "
                               f"that; this config's graph is deeper)")
        super().__init__(f"{phase}: {self.exception}")

    def add_depth(self, depth, config, n_tokens):
        """Say how deep the model's graph is where a recursive engine gave up (a finding about the engine)."""
        c = config
        self.exception = (f"RecursionError: the model's graph at this step is {depth} nodes deep (n_layer {c.n_layer}, "
                          f"n_embd {c.n_embd}, n_head {c.n_head}, block_size {c.block_size}; a document of "
                          f"{n_tokens} tokens) and the engine's {self.phase} recurses once per level, past Python's "
                          f"recursion limit of {sys.getrecursionlimit()}: sort the graph iteratively (or raise the "
                          f"limit with sys.setrecursionlimit)")

    def to_json(self):
        return {"phase": self.phase, "exception": self.exception, "where": self.where}


def guarded_call(phase, fn, *args, **kwargs):
    """fn(*args, **kwargs), with anything the Value class raises (RecursionError included) as a ValueClassError."""
    try:
        return fn(*args, **kwargs)
    except (KeyboardInterrupt, SystemExit, ValueClassError):
        raise
    except Exception as e:  # noqa: BLE001 - a user's class may raise anything; each is reported, none is hidden
        raise ValueClassError(phase, e) from e


def graph_depth(tokens, config):
    """The longest path, in nodes, from the loss of `tokens` to a leaf, in pure's own graph of the model (the
    same ops in the same order as any engine running pure.model): what a recursive sort must descend."""
    from pure.model import init_params
    from pure.rng import Rng
    from pure.train import doc_loss

    loss = doc_loss(tokens, init_params(config, Rng(0)), config)  # the structure does not depend on the weights
    depth = {}
    for node in loss.topological_order():  # children first
        depth[id(node)] = 1 + max((depth[id(c)] for c in node._children), default=0)
    return depth[id(loss)]
