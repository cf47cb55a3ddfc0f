"""What the judge accepts from a worker: an ops job's results and a run's events (parity.sources.pure_side), each
checked against what it must be (names, shapes, types, order); anything else stops the job (WorkerFailure)."""

from parity.errors import WorkerFailure, WorkerInputError


def _numbers(x):
    return isinstance(x, list) and len(x) <= 1 << 16 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in x)


def _rows(x):
    return isinstance(x, list) and len(x) <= 1 << 10 and all(_numbers(row) for row in x)


def _names(x):
    from parity.ops.user_side import PROTOCOL_NAMES

    return isinstance(x, list) and all(isinstance(n, str) and n in PROTOCOL_NAMES for n in x)


def ops_events(worker, specs):
    """An ops worker's frames as (op, {"why"} or {"cases"}), each checked: the ops in table order, one result per
    case, numbers where numbers belong; anything else stops the job (WorkerFailure)."""
    order = iter(specs)
    for header, _ in worker.frames():
        spec = next(order, None)
        ok = header["type"] == "op" and spec is not None and header.get("op") == spec.name
        if ok and "why" in header:
            if isinstance(header["why"], str):
                yield spec.name, {"why": header["why"][:300]}
                continue
        elif ok and isinstance(header.get("cases"), list) and len(header["cases"]) == len(spec.cases) and \
                _names(header.get("calls", [])):
            cases = []
            for c in header["cases"]:
                if isinstance(c, dict) and isinstance(c.get("raised"), str):
                    cases.append({"raised": c["raised"][:300]})
                elif isinstance(c, dict) and all(_numbers(c.get(k)) for k in ("fwd", "grad")) and \
                        all(_rows(c.get(k, [])) for k in ("jac", "again")):
                    cases.append({"fwd": [float(x) for x in c["fwd"]], "grad": [float(x) for x in c["grad"]],
                                  "jac": [[float(x) for x in row] for row in c.get("jac", [])],
                                  "again": [[float(x) for x in row] for row in c.get("again", [])][:8]})
                else:
                    break
            else:
                yield spec.name, {"cases": cases, "calls": list(header.get("calls", []))}
                continue
        worker.stop()
        raise WorkerFailure("sent a message the judge refuses (an op's result out of order or malformed)",
                            worker.phase, None, worker.output())
    if next(order, None) is not None:
        raise WorkerFailure("ended before every op was run", worker.phase, None, worker.output())


# ---- what the judge accepts from a run --------------------------------------------------------------------------

def run_events(worker, run, config, tokens_at):
    """A run worker's frames as the events of parity.sources.pure_side, each checked against what it must be (names,
    shapes, types, step order); a worker that fails becomes a ("raised", step, failure) event naming how."""
    from parity.judge.quantities import record_shapes
    from pure.model import param_shapes

    n_params = sum(r * c for r, c in param_shapes(config).values())
    expected_step = 1
    try:
        for header, arrays in worker.frames():
            kind = header["type"]
            if kind == "init" and expected_step == 1 and set(arrays) == {"weights"} and \
                    arrays["weights"].shape == (n_params,) and header.get("engine") in ("fused", "plain"):
                yield "init", arrays["weights"].tolist(), header["engine"]
            elif kind == "record" and header.get("step") == expected_step:
                T = min(config.block_size, len(tokens_at(expected_step - 1)) - 1)
                shapes = record_shapes(config, T)
                if set(arrays) != set(shapes) or any(arrays[n].shape != s for n, s in shapes.items()):
                    raise ValueError(f"step {expected_step}'s record does not hold what a step records")
                yield "record", expected_step, arrays
                expected_step += 1
            elif kind == "raised" and isinstance(header.get("failure"), dict) and \
                    all(isinstance(header["failure"].get(k), str) for k in ("phase", "exception", "where")):
                f = header["failure"]
                yield "raised", max(1, min(expected_step, run.steps)), {k: f[k][:2000] for k in ("phase", "exception",
                                                                                                   "where")}
                return
            elif kind == "samples" and expected_step == run.steps + 1 and _samples_ok(header, run, config):
                yield "samples", header["samples"], header["rng"]
            else:
                raise ValueError(f"an unexpected {kind!r} frame at step {expected_step}")
    except WorkerInputError:
        raise  # the class cannot be used at all: the commands' exit 2
    except WorkerFailure as failure:
        yield "raised", max(1, min(expected_step, run.steps)), {"phase": failure.phase or "start",
                                                                 "exception": str(failure), "where": "",
                                                                 "output": failure.output, "worker": True}
    except ValueError as e:
        worker.stop()
        failure = WorkerFailure(f"sent a message the judge refuses ({e})", worker.phase, worker.step, worker.output())
        yield "raised", max(1, min(expected_step, run.steps)), {"phase": failure.phase or "start",
                                                                 "exception": str(failure), "where": "",
                                                                 "output": failure.output, "worker": True}


def _samples_ok(header, run, config):
    samples, rng = header.get("samples"), header.get("rng")
    return (isinstance(samples, list) and len(samples) == run.samples
            and all(isinstance(x, str) and len(x) <= config.block_size for x in samples)
            and isinstance(rng, dict) and isinstance(rng.get("state"), int) and isinstance(rng.get("has_spare"), bool)
            and isinstance(rng.get("spare"), float))
