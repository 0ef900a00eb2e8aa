"""The ``edstomo`` console script: a Ctrl-C while Python is still importing edstomo ends cleanly too.

Importing edstomo (NumPy, Pint, pydantic, h5py, the plugins) takes about a second. This
package imports nothing heavy, so the script starts here: a Ctrl-C or SIGTERM during those
imports, before :func:`edstomo.cli.main` takes over interrupt handling, ends with one line
and exit code 130 (143 for SIGTERM) instead of a traceback. Nothing has been written then.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType


class _Terminated(KeyboardInterrupt):
    """SIGTERM while importing."""


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise _Terminated


def main() -> int:
    """Entry point of the ``edstomo`` command: import the command line, then run it."""
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        from edstomo.cli import main as run
    except KeyboardInterrupt as interrupt:
        terminated = isinstance(interrupt, _Terminated)
        what = "terminated (SIGTERM)" if terminated else "interrupted"
        print(f"edstomo: {what} while starting; nothing was written", file=sys.stderr)
        return 143 if terminated else 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    code = run()
    # The work is done and its outcome reported: a signal now would only kill the interpreter while it
    # shuts down (exit -2 with no message), so both are ignored for the rest of the process.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    return code
