"""The ``probpose`` entry point: the parser of every command, output settings, and the one place
where errors become one line and an exit code."""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections.abc import Sequence

from probpose.errors import ProbposeError

__all__ = ["main", "build_parser", "as_flags", "configure_output"]


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``probpose`` and every command (each registered by its module in this package)."""
    from probpose import __version__
    from probpose.cli import bench, evaluate, fit, imports, sample, style, synth, train

    parser = argparse.ArgumentParser(prog="probpose", description="Probabilistic pose priors.")
    parser.add_argument("--version", action="version", version=f"probpose {__version__}")
    talk = parser.add_mutually_exclusive_group()
    talk.add_argument(
        "-v", "--verbose", action="store_true", help="also INFO messages, and a progress line every 2 s in a log"
    )
    talk.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress bars or progress lines; results, warnings and errors only",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in (imports, train, bench, evaluate, sample, synth, fit, style):
        command.register(sub)
    return parser


def configure_output(verbose: bool, quiet: bool) -> None:
    """Warnings always; INFO messages with -v; progress (a bar on a terminal, otherwise a line every
    10 s, 2 s with -v) unless -q. Progress lines go to standard error, prefixed with the time."""
    from probpose import progress

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(message)s")
    progress.configure(verbosity=0 if quiet else 2 if verbose else 1, interval=2.0 if verbose else 10.0)
    progress.log_to_stderr(show=not quiet)


def flags_of(parser: argparse.ArgumentParser) -> set[str]:
    """Every ``--flag`` of ``parser`` and its subcommands."""
    flags: set[str] = set()
    todo = [parser]
    while todo:
        p = todo.pop()
        for action in p._actions:
            flags.update(s for s in action.option_strings if s.startswith("--"))
            if isinstance(action, argparse._SubParsersAction):
                todo.extend(action.choices.values())
    return flags


def as_flags(text: str, flags: set[str]) -> str:
    """Library messages name settings as parameters in backticks (`` `skip_bad` ``); on the
    command line they are flags (``--skip-bad``) where one of that name exists."""

    def flag(m: re.Match) -> str:
        name = "--" + m.group(1).replace("_", "-")
        return name if name in flags else m.group(0)

    return re.sub(r"`([a-z][a-z0-9_]*)`", flag, text)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``probpose`` console script; returns the exit code."""
    from probpose.files import write_error
    from probpose.signals import Interrupted, handle_signals

    try:
        parser = build_parser()  # imports the commands: the environment's limits are read here
    except ProbposeError as e:
        print(f"probpose: error: {e}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    configure_output(args.verbose, args.quiet)
    try:
        with handle_signals():
            return args.func(args)
    except ProbposeError as e:
        print(f"probpose {args.command}: error: {as_flags(str(e), flags_of(parser))}", file=sys.stderr)
        return 1
    except OSError as e:  # a full disk, a read-only place, no permission: the user's to fix, one line
        error = write_error(e)
        if error is None:
            raise
        print(f"probpose {args.command}: error: {error}", file=sys.stderr)
        return 1
    except Interrupted as e:
        print(f"probpose {args.command}: {e}; no output was left half-written", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"probpose {args.command}: interrupted; no output was left half-written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
