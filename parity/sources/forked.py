"""An iterator's items computed in a forked process, while this one does other work.

`parity check` replays a trace twice, in lockstep and free; the two replays are independent, so on a machine
with two cores the free one runs in a child of the judge (`Forked`) while the judge runs the lockstep one, and
its checks come back step by step through a pipe. Forking is used only where it is safe (`can_fork`); elsewhere
the caller iterates the work itself, with the same result.

A child that fails raises its exception here, at the item where it failed (the same exception when it can be
pickled, else a RuntimeError naming it); one that dies, or sends nothing for `timeout` seconds, is a
RuntimeError: the judge's own failure, never a verdict.
"""

import os
import pickle
import select
import signal
import struct
import sys
import threading

_HEADER = struct.Struct("<Q")  # each message: its length, then (kind, payload) pickled


def can_fork(device="cpu"):
    """Whether a forked child can run torch here: Linux (macOS's system libraries are not fork-safe), the CPU (a
    child cannot use its parent's CUDA context) and no thread but this one (a lock held by another thread would
    stay held in the child forever)."""
    return sys.platform.startswith("linux") and device == "cpu" and threading.active_count() == 1


def _send(fd, kind, payload):
    data = pickle.dumps((kind, payload), protocol=pickle.HIGHEST_PROTOCOL)
    data = _HEADER.pack(len(data)) + data
    while data:
        data = data[os.write(fd, data):]


class Forked:
    """Iterate `make()` in a forked child; iterating this object gives its items, in order, here. close() ends
    the child (at once, if it still runs); use it as a context manager."""

    def __init__(self, make, timeout=300.0, setup=None):  # timeout None: wait as long as it takes
        self.timeout = timeout
        read, write = os.pipe()
        # Ctrl-C reaches the whole process group: the parent is interrupted, and it ends the child (close). The
        # child ignores it, from its first instruction: SIGINT is blocked across the fork until it does.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        self.pid = os.fork()
        if self.pid:
            os.close(write)
            self._fd, self._done = read, False
            try:  # a Ctrl-C that came meanwhile is raised here: the child is ended before it goes up
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            except BaseException:
                self.close()
                raise
        else:  # the child: compute, send, and leave without running the parent's exit handlers
            code = 0
            try:
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)
                os.close(read)
                try:
                    if setup is not None:
                        setup()
                    for item in make():
                        _send(write, "item", item)
                    _send(write, "end", None)
                except BaseException as e:  # noqa: BLE001 - raised again in the parent
                    code = 1
                    try:
                        _send(write, "error", e)
                    except Exception:  # noqa: BLE001 - an exception that does not pickle
                        _send(write, "error", RuntimeError(f"{type(e).__name__}: {e}"))
            finally:
                os._exit(code)

    def _read(self, n):
        out = bytearray()
        while len(out) < n:
            ready, _, _ = select.select([self._fd], [], [], self.timeout)
            if not ready:  # (select waits without end for a timeout of None)
                raise RuntimeError(f"the forked process (pid {self.pid}) sent nothing for {self.timeout:.0f} s")
            chunk = os.read(self._fd, n - len(out))
            if not chunk:
                raise RuntimeError(f"the forked process (pid {self.pid}) ended without its results")
            out += chunk
        return bytes(out)

    def __iter__(self):
        return self

    def __next__(self):
        if self._done:
            raise StopIteration
        (length,) = _HEADER.unpack(self._read(_HEADER.size))
        kind, payload = pickle.loads(self._read(length))
        if kind == "item":
            return payload
        self._done = True
        self.close()
        if kind == "error":
            raise payload
        raise StopIteration

    def close(self):
        """End the child (killed if it still runs) and reap it; idempotent. Iterating after it ends at once."""
        self._done = True
        if self.pid is None:
            return
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(self.pid, 0)
        os.close(self._fd)
        self.pid = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
