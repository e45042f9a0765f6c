"""Interruptions: for a command's duration SIGINT, SIGTERM and SIGHUP raise :class:`Interrupted`
and are counted, so that :mod:`probpose.files` never commits a write after one, even if some
library swallowed the ``KeyboardInterrupt``."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

__all__ = ["Interrupted", "handle_signals", "interrupt_count", "raise_if_interrupted", "raise_if_interrupted_since"]

_interrupts = 0  # signals seen while handle_signals() was active
_last_signum: int = signal.SIGINT


class Interrupted(KeyboardInterrupt):
    """The process was interrupted (Ctrl-C or a termination signal): nothing is committed."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"interrupted by {signal.Signals(signum).name}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def interrupt_count() -> int:
    """Signals seen since :func:`handle_signals` started (0 outside it)."""
    return _interrupts


def raise_if_interrupted() -> None:
    """Raise :class:`Interrupted` if a signal was seen since :func:`handle_signals` started."""
    if _interrupts:
        raise Interrupted(_last_signum)


def raise_if_interrupted_since(count: int) -> None:
    """Raise :class:`Interrupted` if a signal came after :func:`interrupt_count` returned ``count``
    (a write that began before it must not be committed)."""
    if _interrupts != count:
        raise Interrupted(_last_signum)


@contextlib.contextmanager
def handle_signals() -> Iterator[None]:
    """For a command's duration: SIGINT, SIGTERM and SIGHUP raise :class:`Interrupted` and are
    remembered (so :func:`atomic_path` never commits after one). Restores the previous handlers."""
    global _interrupts
    signums = [s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None]

    def handler(signum: int, frame: object) -> None:
        global _interrupts, _last_signum
        _interrupts += 1
        _last_signum = signum
        raise Interrupted(signum)

    previous = {}
    try:
        for s in signums:
            previous[s] = signal.signal(s, handler)
    except ValueError:  # not the main thread: leave signals alone
        previous = {}
    _interrupts = 0
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        _interrupts = 0
