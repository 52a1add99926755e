"""What a person watching a run sees: the stage running now, progress bars, a summary table.

Everything goes to stderr, so stdout stays free for the summary and for scripts. On a terminal
bars redraw in place; elsewhere (CI, log files) a bar prints a line at every quarter.
"""
from __future__ import annotations

import sys
import time

from .errors import check_interrupt


class Console:
    """Stage lines and progress bars for one run.

    Parameters
    ----------
    prefix : str
        Put before every line (a sweep job's number), may be empty.
    quiet : bool
        Print nothing (tests, benchmarks).
    """

    def __init__(self, prefix: str = "", quiet: bool = False, stream=None):
        self.prefix = prefix
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.t0 = time.perf_counter()
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()

    def say(self, text: str) -> None:
        if not self.quiet:
            print(f"{self.prefix}{text}", file=self.stream, flush=True)

    def stage(self, name: str, detail: str = "") -> None:
        """Announce a stage (and stop here if a signal arrived meanwhile)."""
        check_interrupt()
        elapsed = time.perf_counter() - self.t0
        self.say(f"[{elapsed:6.1f}s] {name:<9}{detail}")

    def bar(self, label: str, total: int) -> Bar:
        return Bar(self, label, total)


class Bar:
    """A progress bar of ``total`` steps; ``update(n, note)`` sets the count."""

    width = 28

    def __init__(self, console: Console, label: str, total: int):
        self.c, self.label, self.total = console, label, max(int(total), 1)
        self.last_quarter = -1
        self.t0 = time.perf_counter()

    def update(self, n: int, note: str = "") -> None:
        check_interrupt()
        if self.c.quiet:
            return
        frac = min(n / self.total, 1.0)
        filled = int(round(frac * self.width))
        rate = time.perf_counter() - self.t0
        bar = "#" * filled + "." * (self.width - filled)
        line = (f"{self.c.prefix}          {self.label:<9}[{bar}]"
                f" {n}/{self.total} {note} ({rate:.1f}s)")
        if self.c.tty:
            end = "\n" if n >= self.total else ""
            print(f"\r{line}", end=end, file=self.c.stream, flush=True)
        else:
            quarter = int(frac * 4)
            if quarter > self.last_quarter:
                self.last_quarter = quarter
                print(line, file=self.c.stream, flush=True)


def table(rows: list[tuple[str, str]], title: str = "") -> str:
    """Two aligned columns, for the end-of-run summary."""
    width = max((len(k) for k, _ in rows), default=0)
    lines = [title] if title else []
    lines += [f"  {k:<{width}}  {v}" for k, v in rows]
    return "\n".join(lines)
