"""Progress of long work, one way for every command: a tqdm bar on an interactive terminal, and
otherwise (output to a file, CI, a batch job) one log line every ``interval`` seconds at most.

A log line reads ``train joint_flow: step 120/3000 (4%), 12 s, about 4 min left; val NLL -12.3``.
Lines go to the ``probpose.progress`` logger at INFO, so a library user sees them only after
configuring logging; the command line shows them unless ``-q`` (see :func:`configure`).
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

__all__ = ["Progress", "configure", "log_to_stderr", "progress", "track", "format_seconds"]

log = logging.getLogger("probpose.progress")
T = TypeVar("T")

_settings = {"verbosity": 1, "interval": 10.0}


def configure(verbosity: int | None = None, interval: float | None = None) -> None:
    """``verbosity`` 0: no bars and no progress lines; 1: bars on a terminal, lines in a log;
    2: the same (``-v`` also lowers the log level to INFO). ``interval``: seconds between two
    progress lines of one task in a log (default 10)."""
    if verbosity is not None:
        _settings["verbosity"] = int(verbosity)
    if interval is not None:
        if not (math.isfinite(interval) and interval >= 0):
            raise ValueError(f"progress interval must be a non-negative number of seconds, got {interval!r}")
        _settings["interval"] = float(interval)


class _CurrentStderr(logging.StreamHandler):
    """A handler writing to whatever ``sys.stderr`` is at the time of each record."""

    @property
    def stream(self):  # noqa: D102
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def log_to_stderr(show: bool = True) -> None:
    """Send progress lines to standard error (``HH:MM:SS`` first), or silence them (``show=False``)."""
    log.setLevel(logging.INFO if show else logging.WARNING)
    log.propagate = False
    if not any(isinstance(h, _CurrentStderr) for h in log.handlers):
        handler = _CurrentStderr()
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
        log.addHandler(handler)


def format_seconds(seconds: float) -> str:
    """``42 s``, ``3.5 min``, ``2.1 h``."""
    if not math.isfinite(seconds):
        return "?"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


class Progress:
    """Progress of one task of ``total`` units (``None``: unknown).

    On a terminal (standard error is a TTY) a tqdm bar; otherwise a line to the
    ``probpose.progress`` logger when ``interval`` seconds have passed since the last one, and one
    when the task closes. ``note(**fields)`` sets what the line (or the bar's postfix) ends with,
    such as the latest validation NLL. ``enabled=False`` (or verbosity 0) shows nothing.
    ``clock`` is for tests.
    """

    def __init__(
        self,
        total: int | None,
        desc: str,
        unit: str = "step",
        initial: int = 0,
        enabled: bool = True,
        interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        terminal: bool | None = None,
    ) -> None:
        self.total, self.desc, self.unit = total, desc, unit
        self.n = self.start_n = initial
        self.fields: dict[str, str] = {}
        self.clock = clock
        self.interval = _settings["interval"] if interval is None else interval
        self.start = self.last = clock()
        self.last_n: int | None = None
        self.closed = False
        on = enabled and _settings["verbosity"] > 0
        tty = sys.stderr.isatty() if terminal is None else terminal
        self.bar = None
        self.lines = on and not tty
        if on and tty:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, leave=False, dynamic_ncols=True)

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.lines and self.clock() - self.last >= self.interval:
            self._line()

    def note(self, **fields: object) -> None:
        """What the progress line ends with, e.g. ``note(val_nll="-12.3")``."""
        self.fields.update({k: str(v) for k, v in fields.items()})
        if self.bar is not None:
            self.bar.set_postfix(self.fields, refresh=False)

    def message(self) -> str:
        """The progress line as it reads now."""
        elapsed = self.clock() - self.start
        done = self.n - self.start_n
        if self.total:
            where = f"{self.unit} {self.n:,}/{self.total:,} ({100 * self.n / self.total:.0f}%)"
        else:
            where = f"{self.n:,} {self.unit}s"
        parts = [f"{self.desc}: {where}", format_seconds(elapsed)]
        if self.total and 0 < done and self.n < self.total and not self.closed:
            parts.append(f"about {format_seconds(elapsed / done * (self.total - self.n))} left")
        text = ", ".join(parts)
        if self.fields:
            text += "; " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in self.fields.items())
        return text

    def event(self, text: str) -> None:
        """A line that always shows (model boundaries, say): above the bar, or in the log."""
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        elif self.lines:
            log.info("%s", text)

    def _line(self) -> None:
        self.last, self.last_n = self.clock(), self.n
        log.info("%s", self.message())

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.bar is not None:
            self.bar.close()
        elif self.lines and self.last_n != self.n:  # the last line already says where it ended
            self._line()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress(total: int | None, desc: str, unit: str = "step", initial: int = 0, enabled: bool = True) -> Progress:
    """A :class:`Progress` with the command's settings."""
    return Progress(total, desc, unit, initial, enabled)


def track(
    items: Iterable[T], desc: str, total: int | None = None, unit: str = "step", enabled: bool = True
) -> Iterator[T]:
    """Iterate over ``items`` with a :class:`Progress` (``total`` from ``len`` where it has one)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with Progress(total, desc, unit, enabled=enabled) as bar:
        for item in items:
            yield item
            bar.update(1)
