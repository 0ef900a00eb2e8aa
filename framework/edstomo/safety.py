"""The command line's safety net: output and size options, checks before computing, exit codes.

Every ``edstomo`` command that writes declares ``--overwrite`` and
``--allow-large`` with :func:`add_arguments` and calls :func:`prepare` first,
before any computation: the output path is checked by the rules of
:mod:`edstomo.outputs` (never over an input, never over a special file or a
link, an existing output only with ``--overwrite``) and ``--allow-large``
lifts the size guard of :mod:`edstomo.resources`. :func:`main` parses the
arguments, runs the command and turns every outcome into an exit code:

====  ===================================================================
code  meaning
====  ===================================================================
0     success
1     a user error: bad input, option, file or output path (one line on
      stderr, ``edstomo <command>: error: …``, no traceback)
2     a usage error (unknown option, missing argument; from argparse)
130   interrupted by Ctrl-C (SIGINT); 143: terminated by SIGTERM. One line
      on stderr; outputs not completed are not written, old ones are intact
====  ===================================================================

Warnings (assumed metadata, a unit conversion) are printed as one line each,
``edstomo <command>: note: …``. Set ``EDSTOMO_STRICT_ERRORS=1`` to let errors
that are not edstomo's own — neither an :class:`EdstomoError` nor a
``ValueError`` raised by edstomo's code, but e.g. a ``KeyError`` or a pint
error from deep inside a library — end in a traceback instead of a one-line
message; the fuzz tests do, to find them.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from . import outputs, resources
from .errors import EdstomoError

__all__ = [
    "EXIT_CODES",
    "STRICT_ENV",
    "add_arguments",
    "main",
    "non_negative_int",
    "prepare",
]

#: Environment variable that lets errors not raised by edstomo end in a traceback (the fuzz tests set it).
STRICT_ENV = "EDSTOMO_STRICT_ERRORS"

#: The epilog of ``edstomo --help``: exit codes, what outputs may replace, the size guard.
EXIT_CODES = """exit codes:
  0    success
  1    user error: bad input, option, file or output path (one line on stderr, no traceback)
  2    usage error: unknown option or missing argument
  130  interrupted by Ctrl-C (143: terminated by SIGTERM); unfinished outputs are not written,
       existing files are left as they were

outputs: a command that writes refuses an output that is one of its inputs, a folder where a
file is expected, a FIFO, device or symbolic link, and an existing file or non-empty run folder
unless --overwrite is given (the old file is replaced only once the new one is complete).
Runs that would need more memory than is available, or more than 100000 iterations, are
refused unless --allow-large is given (or EDSTOMO_ALLOW_LARGE=1)."""


def add_arguments(parser: argparse.ArgumentParser, *, output: str) -> None:
    """Add ``--overwrite`` and ``--allow-large`` to a command that writes an output ``"file"`` or ``"folder"``."""
    if output not in ("file", "folder"):
        raise ValueError(f"output: {output!r} must be 'file' or 'folder'")
    what = (
        "replace an existing output file (it is kept until the new one is complete)"
        if output == "file"
        else "write into a non-empty output folder (files of the same names are replaced)"
    )
    parser.add_argument("--overwrite", action="store_true", help=what)
    parser.add_argument(
        "--allow-large",
        action="store_true",
        help="run even when the memory estimate exceeds the available memory, or with more than 100000 iterations",
    )


def prepare(args: argparse.Namespace, *, output: str, inputs: Iterable[str | Path | None] = ()) -> Path:
    """The checks a writing command makes before computing; returns the output path.

    Parameters
    ----------
    args
        The parsed arguments: ``out``, ``overwrite`` and ``allow_large`` are read.
    output
        ``"file"`` or ``"folder"``: what ``--out`` names.
    inputs
        The files and folders the command reads (None entries are skipped); they are protected.
    """
    if getattr(args, "allow_large", False):
        os.environ[resources.ALLOW_ENV] = "1"
    sources = [Path(p) for p in inputs if p is not None]
    overwrite = bool(getattr(args, "overwrite", False))
    if output == "file":
        return outputs.check_output_file(args.out, inputs=sources, overwrite=overwrite)
    return outputs.check_output_folder(args.out, inputs=sources, overwrite=overwrite)


def non_negative_int(text: str) -> int:
    """An argparse type: an integer >= 0 (e.g. a random seed); a usage error otherwise."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be an integer >= 0")
    return value


# ----- running a command -----------------------------------------------------------
def _message(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror and error.filename is not None:
        return f"{error.filename}: {error.strerror}"
    text = str(error).strip().strip("'\"")
    return text.splitlines()[0] if text else type(error).__name__


def _strict() -> bool:
    return os.environ.get(STRICT_ENV, "").strip().lower() in ("1", "true", "yes", "on")


#: Packages whose own ``ValueError`` messages are edstomo's (they name the parameter, the value and what is
#: expected); code not yet converted to :class:`EdstomoError` still raises plain ``ValueError`` there.
OWN_PACKAGES = ("edstomo", "edstomo_plugins", "edstomo_microscope")


def _raised_by_edstomo(error: BaseException) -> bool:
    """Whether ``error`` is a ValueError raised by edstomo's own code (not by a library it calls)."""
    frame = error.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    module = "" if frame is None else str(frame.tb_frame.f_globals.get("__name__", ""))
    return isinstance(error, ValueError) and module.split(".")[0] in OWN_PACKAGES


class InterruptLogFilter(logging.Filter):
    """Drop log records of an interrupt that :mod:`edstomo.outputs` has already recorded.

    A library that catches ``BaseException`` to log it (e.g. SQLAlchemy while returning
    a pooled connection) would otherwise print a traceback for a Ctrl-C that the
    command reports itself, in one line, with exit code 130.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        kind = record.exc_info[0] if record.exc_info else None
        recorded = kind is not None and issubclass(kind, KeyboardInterrupt) and outputs.interrupted() is not None
        return not recorded


def main(build_parser: Callable[[Sequence[str]], argparse.ArgumentParser], argv: Sequence[str]) -> int:
    """Build the parser, parse ``argv`` and run the command; the exit code (see the module docstring).

    Interrupts are handled from the start (building the parser imports the
    plugins, which takes a moment); a Ctrl-C while Python imports edstomo
    itself, before this function runs, is handled by the console script's
    launcher (:mod:`edstomo_entry`).
    """
    previous_hook = sys.unraisablehook
    allow_large = os.environ.get(resources.ALLOW_ENV)

    def unraisable(info: Any) -> None:  # an interrupt inside a finaliser is handled by the flag, not shown
        if issubclass(info.exc_type, KeyboardInterrupt) and outputs.interrupted() is not None:
            return
        previous_hook(info)

    # libraries that log an exception while a connection is returned (SQLAlchemy's pool, used by pyxray)
    # would print the interrupt's traceback through logging: the flag reports it, with one line
    handlers = [logging.lastResort, *logging.getLogger().handlers]
    quiet = InterruptLogFilter()

    # the inputs a command protects are protected for that command only (outputs.protecting restores the set)
    with warnings.catch_warnings(), outputs.interrupt_handlers(), outputs.protecting([]):
        sys.unraisablehook = unraisable
        for handler in handlers:
            if handler is not None:
                handler.addFilter(quiet)
        try:
            try:
                args = build_parser(argv).parse_args(argv)
            except KeyboardInterrupt:
                return _interrupted("edstomo")
            return _run(args.command, args.func, args)
        finally:
            sys.unraisablehook = previous_hook
            for handler in handlers:
                if handler is not None:
                    handler.removeFilter(quiet)
            if allow_large is None:  # --allow-large holds for this command only
                os.environ.pop(resources.ALLOW_ENV, None)
            else:
                os.environ[resources.ALLOW_ENV] = allow_large


def _interrupted(prefix: str) -> int:
    terminated = outputs.interrupted() == signal.SIGTERM
    what = "terminated (SIGTERM)" if terminated else "interrupted"
    print(f"{prefix}: {what}; unfinished outputs were not written, old files are unchanged", file=sys.stderr)
    return 143 if terminated else 130


def _run(command: str, func: Callable[[argparse.Namespace], int | None], args: argparse.Namespace) -> int:
    prefix = f"edstomo {command}"

    shown: set[str] = set()

    def show(message: Any, category: type[Warning], *rest: Any, **options: Any) -> None:
        kind = "note" if issubclass(category, UserWarning) else "warning"
        text = " ".join(str(message).split())
        if text not in shown:  # the same note from two places is said once
            shown.add(text)
            print(f"{prefix}: {kind}: {text}", file=sys.stderr)

    warnings.showwarning = show
    try:
        code = int(func(args) or 0)
        outputs.raise_if_interrupted()
        return code
    except KeyboardInterrupt:
        return _interrupted(prefix)
    except (EdstomoError, OSError) as error:
        print(f"{prefix}: error: {_message(error)}", file=sys.stderr)
        return 1
    except (ValueError, LookupError, TypeError) as error:
        if _strict() and not _raised_by_edstomo(error):
            raise
        print(f"{prefix}: error: {_message(error)}", file=sys.stderr)
        return 1
