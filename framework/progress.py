"""What a person watching a run sees: the stage running now, progress bars, a summary table.

Everything human goes to stderr, so stdout stays free for the one line (or ``--json``) a script
reads (:mod:`framework.app.jobs`). On a terminal bars are tqdm's, redrawn in place at the terminal's
width; elsewhere (CI, log files) a bar prints a line at every quarter. Every line the console
says is also a record of the ``spiketune`` logger, so a Hydra job's log file holds the run's log.
"""
from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

from framework.errors import check_interrupt
from framework.redact import redact

LOG = logging.getLogger("spiketune")


class Console:
    """Stage lines and progress bars for one run.

    Parameters
    ----------
    prefix : str
        Put before every line (a sweep job's number), may be empty.
    quiet : bool
        Print nothing (tests, benchmarks).
    """

    def __init__(self, prefix: str = "", quiet: bool = False, stream: TextIO | None = None
                 ) -> None:
        self.prefix = prefix
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.t0 = time.perf_counter()
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()

    def say(self, text: str) -> None:
        text = redact(text)  # a tracking URI's password, in a stage line or a hint
        if not self.quiet:
            print(f"{self.prefix}{text}", file=self.stream, flush=True)
            # no handler outside a Hydra job: INFO records then go nowhere, so nothing twice
            LOG.info("%s%s", self.prefix, text)

    def stage(self, name: str, detail: str = "") -> None:
        """Announce a stage (and stop here if a signal arrived meanwhile)."""
        check_interrupt()
        elapsed = time.perf_counter() - self.t0
        self.say(f"[{elapsed:6.1f}s] {name:<8} {detail}")

    def bar(self, label: str, total: int) -> Bar:
        return Bar(self, label, total)


class Bar:
    """A progress bar of ``total`` steps; ``update(n, note)`` sets the count."""

    width = 28

    def __init__(self, console: Console, label: str, total: int):
        self.c, self.label, self.total = console, label, max(int(total), 1)
        self.last_quarter = -1
        self.t0 = time.perf_counter()
        self.tqdm = None
        if console.tty and not console.quiet:
            from tqdm import tqdm

            self.tqdm = tqdm(total=self.total, desc=f"{console.prefix}          {label:<9}",
                             file=console.stream, dynamic_ncols=True, leave=True,
                             bar_format="{desc}{bar} {n_fmt}/{total_fmt} {postfix} "
                                        "[{elapsed}<{remaining}]")

    def update(self, n: int, note: str = "") -> None:
        check_interrupt()
        if self.c.quiet:
            return
        if self.tqdm is not None:
            self.tqdm.n = min(n, self.total)
            self.tqdm.set_postfix_str(note, refresh=False)
            self.tqdm.refresh()
            if n >= self.total:
                self.tqdm.close()
                LOG.info("%s%s %d/%d %s", self.c.prefix, self.label, n, self.total, note)
            return
        frac = min(n / self.total, 1.0)
        quarter = int(frac * 4)
        if quarter > self.last_quarter:
            self.last_quarter = quarter
            filled = int(round(frac * self.width))
            bar = "#" * filled + "." * (self.width - filled)
            line = (f"{self.c.prefix}          {self.label:<9}[{bar}]"
                    f" {n}/{self.total} {note} ({time.perf_counter() - self.t0:.1f}s)")
            print(line, file=self.c.stream, flush=True)
            LOG.info("%s", line)


def table(rows: list[tuple[str, str]], title: str = "") -> str:
    """Two aligned columns, for the end-of-run summary."""
    width = max((len(k) for k, _ in rows), default=0)
    lines = [title] if title else []
    lines += [f"  {k:<{width}}  {v}" for k, v in rows]
    return "\n".join(lines)
