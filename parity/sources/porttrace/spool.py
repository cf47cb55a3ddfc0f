"""A trace's steps read and checked once, kept in a temporary file as float64 arrays and replayed from there
(`SpooledSteps`), read in a forked process while the judge imports torch where that is safe."""

from .limits import TraceError


class SpooledSteps:
    """The steps of a trace, read and checked once, kept in a temporary file as arrays (float64) and replayed
    from there; `len()` is the step count, iteration gives PortSteps whose grads, params and logits are arrays."""

    def __init__(self, trace, background=False):
        import tempfile

        self.meta, self.init, self.path = trace.meta, trace.init, trace.path
        self._spool = tempfile.TemporaryFile()
        self.count, self._child = None, None
        if background and _can_fork():
            self._child = _Reader(trace, self._spool)
        else:
            self.count = _write_spool(trace, self._spool)

    def wait(self):
        """Wait for the reading process, if any: TraceError as the trace's, RuntimeError if the reader failed."""
        if self._child is not None:
            try:
                self.count = self._child.result()
            finally:  # interrupted while waiting (Ctrl-C), the reader is still running: close() ends it
                if self._child.reaped:
                    self._child = None

    def __len__(self):
        self.wait()
        return self.count

    def __iter__(self):
        import pickle

        self.wait()
        self._spool.seek(0)
        for _ in range(self.count):
            yield pickle.load(self._spool)

    def close(self):
        if self._child is not None:
            self._child.kill()
            self._child = None
        self._spool.close()


def _write_spool(trace, spool):
    """Every step of `trace`, its tensors as float64 arrays, pickled into `spool`; the step count."""
    import pickle

    import numpy as np

    count = 0
    for s in trace:
        for key in ("grads", "params", "logits"):
            value = getattr(s, key)
            if value is not None:
                setattr(s, key, np.array(value, dtype=np.float64))
        pickle.dump(s, spool, protocol=pickle.HIGHEST_PROTOCOL)
        count += 1
    spool.flush()
    return count


def _can_fork():
    """Reading in a forked process pays where torch is still to be imported (the reading overlaps the import), and
    is safe where parity.sources.forked says so."""
    import sys

    from parity.sources.forked import can_fork

    return "torch" not in sys.modules and can_fork()


class _Reader:
    """_write_spool in a forked process (parity.sources.forked): the step count comes back, or the TraceError naming the
    line, raised here; any other failure is the judge's own (RuntimeError)."""

    def __init__(self, trace, spool):
        from parity.sources.forked import Forked

        self._job = Forked(lambda: iter([_write_spool(trace, spool)]), timeout=None)  # a big trace takes minutes
        trace.close()  # the parent's copy of the file: the child reads its own

    @property
    def reaped(self):  # once waited for, its pid is no longer ours to signal
        return self._job.pid is None

    def result(self):
        try:
            count = next(self._job)
            for _ in self._job:  # the end: the child is reaped
                pass
        except TraceError:
            raise
        except Exception as e:  # noqa: BLE001 - the reader's failure, not the trace's
            raise RuntimeError(f"the process reading the trace failed: {type(e).__name__}: {e}") from None
        return count

    def kill(self):
        self._job.close()
