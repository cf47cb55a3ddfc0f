"""`make bench`: training speed of each implementation on the default config, as ratios from one run.

Speed claims in this project come from here, never from timed tests. Each
implementation trains the seed's default config on the same documents; the
table gives seconds, steps per second, and the speed relative to pure.
"""

import sys
import time

from pure.cli import ArgumentParser, positive_int
from pure.data import DataError, load_docs
from pure.train import Trainer


def time_steps(trainer, steps, start=0):
    t0 = time.perf_counter()
    for step in range(start, start + steps):
        trainer.train_step(step)
    return time.perf_counter() - t0


def bench_torch(docs, steps, threads, dtype="float64"):
    from torch_ref.train import TorchTrainer

    trainer = TorchTrainer(docs, steps=1000, dtype=dtype, num_threads=threads)
    trainer.train_step(0)  # warm-up: first-call allocations and dispatch caches
    return time_steps(trainer, steps, start=1)


def main(argv=None):
    p = ArgumentParser(prog="python -m parity.bench", description=__doc__.splitlines()[0])
    p.add_argument("--data", metavar="PATH", help="names file (default: the loader's order)")
    p.add_argument("--pure-steps", type=positive_int, default=100,
                   help="steps timed for pure (default: 100; all 1000 take minutes)")
    p.add_argument("--torch-steps", type=positive_int, default=999,
                   help="steps timed for torch_ref after one warm-up step (default: 999)")
    args = p.parse_args(argv)
    try:
        docs = load_docs(args.data)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    rows = []
    print(f"timing pure for {args.pure_steps} steps ...", flush=True)
    rows.append(("pure (float64, stdlib)", args.pure_steps, time_steps(Trainer(docs, steps=1000), args.pure_steps)))
    for threads in (1, 2):
        for dtype in ("float64", "float32"):
            print(f"timing torch_ref {dtype} with {threads} thread(s) for {args.torch_steps} steps ...", flush=True)
            rows.append((f"torch_ref ({dtype}, {threads} thr)", args.torch_steps,
                         bench_torch(docs, args.torch_steps, threads, dtype)))
    base = rows[0][2] / rows[0][1]
    print(f"\n{'implementation':<28} {'steps':>6} {'seconds':>9} {'steps/s':>9} {'s per 1000':>11} {'vs pure':>9}")
    for name, steps, seconds in rows:
        per = seconds / steps
        print(f"{name:<28} {steps:>6} {seconds:>9.2f} {1 / per:>9.1f} {per * 1000:>11.2f} {base / per:>8.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
