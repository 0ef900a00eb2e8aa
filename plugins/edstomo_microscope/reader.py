"""Read untrusted microscope files in a separate process, so that a crashing reader cannot take edstomo down.

Third-party readers of vendor formats are written for well-formed files. A
Bruker ``.bcf`` cut short by an interrupted copy makes RosettaSciIO's compiled
decompressor read past the end of its buffer: the process dies with a
segmentation fault or a bus error, without a message. :func:`call` therefore
runs a read function in a *reader process*: a fresh interpreter
(``python -m edstomo_microscope.reader``, so it shares no state with this one
and never re-runs the caller's script), in its own session (a Ctrl-C at the
terminal is this process's to handle), talking over a pipe:

* a result comes back as usual (warnings raised while reading are re-issued
  here, naming the file; deprecation warnings of the readers are dropped);
* edstomo's own errors come back as they are; any other exception comes back
  as an :class:`UnreadableFileError` ``"FILE: cannot be read (Type: message)"``;
* a crash of the reader process (a signal, or an exit) becomes
  ``"FILE: cannot be read (the file reader crashed with SIGSEGV; the file is
  probably truncated or damaged)"``, and the next call starts a new reader process.

Up to :data:`MAX_READERS` reader processes (one per core) are kept for the life
of this process (starting one and importing HyperSpy in it takes a few
seconds, once), so that several files can be read at the same time from
threads (:func:`readers` says how many); they end with this process (at exit,
by :func:`close`, or when their pipe closes after a crash or ``kill -9`` of
this process).
"""

from __future__ import annotations

import atexit
import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from edstomo.errors import EdstomoError, InputError

__all__ = ["MAX_READERS", "ReaderWarning", "UnreadableFileError", "call", "cannot_read", "close", "readers"]


class UnreadableFileError(InputError):
    """A file cannot be read: damaged, truncated, of another format, or its reader crashed."""


class ReaderWarning(UserWarning):
    """A warning the file reader raised while reading a file (re-issued with the file's name)."""


def cannot_read(path: str | Path, error: BaseException | str) -> UnreadableFileError:
    """``"<path>: cannot be read (<Type>: <first line>)"`` for a reader's exception (or a given reason)."""
    if isinstance(error, str):
        return UnreadableFileError(f"{path}: cannot be read ({error})")
    text = str(error).strip().splitlines()
    detail = f"{type(error).__name__}: {text[0]}" if text else f"{type(error).__name__} in the reader"
    return UnreadableFileError(f"{path}: cannot be read ({detail})")


# ----- framing: a length, then a pickle -------------------------------------------
_HEADER = struct.Struct("<Q")


def _send(stream: IO[bytes], obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _receive(stream: IO[bytes]) -> Any:
    """The next message, or raise EOFError when the other side is gone."""
    head = stream.read(_HEADER.size)
    if len(head) < _HEADER.size:
        raise EOFError
    size = _HEADER.unpack(head)[0]
    data = stream.read(size)
    if len(data) < size:
        raise EOFError
    return pickle.loads(data)


# ----- the reader process ------------------------------------------------------------
def _run(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, Any, list[str]]:
    """In the reader process: ``("ok", result, warnings)`` or ``("error", exception, warnings)``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            outcome: tuple[str, Any] = ("ok", func(*args, **kwargs))
        except EdstomoError as error:
            outcome = ("error", error)
        except Exception as error:  # any reader error; sent back by its type and first line
            outcome = ("error", cannot_read(args[0] if args else "file", error))
    kept = [
        f"{type(w.message).__name__}: {w.message}"
        for w in caught
        if not issubclass(w.category, (DeprecationWarning, PendingDeprecationWarning))
        and "Deprecat" not in w.category.__name__
    ]
    return (*outcome, list(dict.fromkeys(kept)))


def _serve() -> None:
    """The reader process's loop: read a request, answer it, until the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    requests, answers = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a reader that prints must not corrupt the answers
    while True:
        try:
            func, args, kwargs = _receive(requests)
        except EOFError:
            return
        answer = _run(func, args, kwargs)
        try:
            data = pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as error:  # a result that cannot travel back is the caller's mistake; say so
            failure = cannot_read(args[0] if args else "file", f"its content cannot be sent back: {error}")
            data = pickle.dumps(("error", failure, answer[2]), protocol=pickle.HIGHEST_PROTOCOL)
        answers.write(_HEADER.pack(len(data)) + data)
        answers.flush()


# ----- this process's side -------------------------------------------------------------
class _Reader:
    """One reader process (started on first use) and the lock of whoever is using it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.process: subprocess.Popen[bytes] | None = None

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.kill()
        process.wait()
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()


#: Reader processes: as many as there are cores, at most :data:`MAX_READERS`; :func:`call` uses a free one.
MAX_READERS = 2
_READERS = [_Reader() for _ in range(max(1, min(MAX_READERS, os.cpu_count() or 1)))]
_FREE = threading.Semaphore(len(_READERS))


def readers() -> int:
    """How many files :func:`call` can read at the same time (one reader process each)."""
    return len(_READERS)


def _start() -> subprocess.Popen[bytes]:
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return subprocess.Popen(
        [sys.executable, "-m", "edstomo_microscope.reader"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # readers log noisily; their errors come back as messages
        env=environment,
        start_new_session=True,
    )


def close() -> None:
    """Stop the reader processes (a later :func:`call` starts new ones); their memory is given back."""
    for reader in _READERS:
        with reader.lock:
            reader.stop()


atexit.register(close)


def _exit_reason(process: subprocess.Popen[bytes]) -> str:
    try:
        code = process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        return "the file reader stopped answering"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"the file reader crashed with {name}"
    return f"the file reader exited with code {code}"


def call(func: Callable[..., Any], path: str | Path, *args: Any, **kwargs: Any) -> Any:
    """``func(path, *args, **kwargs)`` in the reader process; errors and crashes name ``path``.

    ``func`` must be importable by name (a module-level function) and its
    arguments and result picklable.

    Raises
    ------
    UnreadableFileError
        ``"<path>: cannot be read (…)"`` when the reader crashed or raised an error that is not edstomo's.
    EdstomoError
        As raised by ``func``.
    """
    with _FREE:
        reader = next(r for r in _READERS if r.lock.acquire(blocking=False))
        try:
            if reader.process is None or reader.process.poll() is not None:
                reader.stop()
                reader.process = _start()
            process = reader.process
            try:
                _send(process.stdin, (func, (path, *args), kwargs))  # type: ignore[arg-type]
                status, value, caught = _receive(process.stdout)  # type: ignore[arg-type]
            except (EOFError, BrokenPipeError):
                reason = _exit_reason(process)
                reader.stop()
                raise cannot_read(path, f"{reason}; the file is probably truncated or damaged") from None
            except BaseException:  # Ctrl-C while waiting: the reader is mid-answer, so start afresh next time
                reader.stop()
                raise
        finally:
            reader.lock.release()
    for message in caught:
        warnings.warn(f"{path}: {message}", ReaderWarning, stacklevel=2)
    if status == "error":
        raise value
    return value


if __name__ == "__main__":  # run as the module's own name, so that what it sends back unpickles here
    from edstomo_microscope.reader import _serve as serve

    serve()
