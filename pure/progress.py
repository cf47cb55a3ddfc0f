"""One progress printer for every long command: a line per step, redrawn in place on a terminal, and a line every
so often (a tenth, a twentieth of the run) when the output is a log or a pipe."""

import sys
import time


class Progress:
    """`update(step, text)` shows `text` for step `step` of `total`; `note(text)` prints a stage between steps on a
    line of its own; `close()` ends the redrawn line. With `timed`, the seconds since the start follow the text
    (always in a log; on a terminal only when `timed_on_tty`)."""

    def __init__(self, total, stream=None, lines=10, timed=True, timed_on_tty=True, after=None):
        self.total, self.stream = total, stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty()
        self.every = 1 if self.tty else max(1, total // lines)
        self.timed = timed and (timed_on_tty or not self.tty)
        self.after = after  # what happens once the last step is done (sampling, ...), announced then
        self.t0 = time.perf_counter()

    @property
    def elapsed(self):
        return time.perf_counter() - self.t0

    def due(self, step):
        """Whether update(step, ...) prints anything: build a costly line only then."""
        return self.tty or step % self.every == 0 or step == self.total

    def update(self, step, text):
        if self.due(step):
            line = f"{text} | {self.elapsed:.1f}s" if self.timed else text
            self.stream.write(line + ("\r" if self.tty else "\n"))
            self.stream.flush()
        if step == self.total and self.after:
            self.note(self.after)

    def note(self, text):
        self.close()
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self):
        if self.tty:
            self.stream.write("\n")
            self.tty = False  # nothing left to redraw
