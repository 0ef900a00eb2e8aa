"""Where edstomo may write, how it writes, and how it leaves nothing behind.

The rules (one place for every command and for :func:`edstomo.io.atomic_path`):

* **Never over an input.** A command registers the files it reads
  (:func:`protect`); an output path that is one of them (the same file, by
  device and inode, so hard links and other spellings count) is refused.
* **Only regular files are replaced.** An output path that is a folder, a
  FIFO, a device, a socket or a symbolic link is refused: edstomo writes a new
  file and renames it over the destination, which would replace the special
  file or the link itself instead of writing through it. Write to the link's
  target by naming the target.
* **Existing results are kept unless asked.** On the command line an existing
  output file, or an output folder that holds anything but edstomo's own
  stale temporaries, is refused unless ``--overwrite`` is given
  (:func:`check_output_file`, :func:`check_output_folder`). The library's
  ``save`` functions replace files, as documented there.
* **Checked before computing.** Commands call these checks first, so a bad
  ``--out`` fails in a second, not after the computation.
* **Temporaries are found again.** A file being written is a hidden sibling
  ``.<name>.edstomo-<host>-<pid>-<token>.tmp`` and chunk folders are
  ``.<name>.edstomo-<host>-<pid>-<token>.chunks``. They are removed on every
  exit path of the writing process (success, error, Ctrl-C, SIGTERM); after a
  ``kill -9`` or a power cut, the next write of the same output on the same
  host removes those whose process no longer runs (:func:`remove_stale`).
  Leftovers of another host are left alone (their process cannot be checked).
* **Interrupts are never lost.** :func:`interrupt_handlers` turns SIGINT and
  SIGTERM into :class:`KeyboardInterrupt` and remembers them; a write that
  would complete after an interrupt (e.g. one raised inside a library callback
  that swallowed it) is abandoned before the final rename
  (:func:`raise_if_interrupted`), so the old output stays as it was.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import stat
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from .errors import OutputPathError

__all__ = [
    "DeferredInterrupts",
    "check_output_file",
    "check_output_folder",
    "check_target",
    "children_ignore_interrupts",
    "interrupt_handlers",
    "interrupted",
    "protect",
    "protected",
    "protecting",
    "raise_if_interrupted",
    "remove_stale",
    "remove_stale_in",
    "stale_leftovers",
    "temporary_file",
    "temporary_folder",
]

TAG = "edstomo"
_KINDS = ("tmp", "chunks")
#: The part of a temporary's name after ``.<name>.edstomo-``: host, pid, random token, kind
#: (anything after the kind belongs to a temporary nested in it and goes with it).
_REST = re.compile(r"(?P<host>[A-Za-z0-9_]+)-(?P<pid>\d+)-(?P<token>[A-Za-z0-9_]+)\.(?P<kind>tmp|chunks)(?:\..*)?")
_ANY = re.compile(r"\..+\." + TAG + r"-(?P<rest>.+)")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname()) or "host"


def _prefix(path: Path) -> str:
    return f".{path.name}.{TAG}-{_host()}-{os.getpid()}-"


# ----- temporaries ---------------------------------------------------------------
def temporary_file(path: str | Path) -> Path:
    """Create an empty hidden temporary file beside ``path``, named so that a later run finds it."""
    path = Path(path)
    handle, name = tempfile.mkstemp(prefix=_prefix(path), suffix=".tmp", dir=path.parent)
    os.close(handle)
    return Path(name)


def temporary_folder(path: str | Path) -> Path:
    """Create a hidden folder beside ``path`` for its parts (e.g. Dask chunk files)."""
    path = Path(path)
    return Path(tempfile.mkdtemp(prefix=_prefix(path), suffix=".chunks", dir=path.parent))


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _is_stale(rest: str) -> bool:
    match = _REST.fullmatch(rest)
    return bool(match) and match["host"] == _host() and not _alive(int(match["pid"]))


def stale_leftovers(path: str | Path) -> list[Path]:
    """Temporaries of ``path`` left by a process of this host that no longer runs."""
    path = Path(path)
    folder, start = path.parent, f".{path.name}.{TAG}-"
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    return sorted(folder / n for n in names if n.startswith(start) and _is_stale(n[len(start) :]))


def _remove(item: Path) -> None:
    if item.is_dir() and not item.is_symlink():
        shutil.rmtree(item, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            item.unlink()


def remove_stale(path: str | Path) -> list[Path]:
    """Remove the stale temporaries of ``path`` (see :func:`stale_leftovers`); return what was removed."""
    found = stale_leftovers(path)
    for item in found:
        _remove(item)
    return found


def remove_stale_in(folder: str | Path) -> list[Path]:
    """Remove every stale edstomo temporary inside ``folder`` (recursively); return what was removed."""
    removed: list[Path] = []
    for root, dirs, files in os.walk(folder):
        for name in [*dirs, *files]:
            match = _ANY.fullmatch(name)
            if match and _is_stale(match["rest"]):
                _remove(Path(root) / name)
                removed.append(Path(root) / name)
        dirs[:] = [d for d in dirs if Path(root, d) not in removed]
    return removed


# ----- inputs --------------------------------------------------------------------
_PROTECTED: dict[tuple[int, int], str] = {}


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_dev, info.st_ino


def protect(paths: Iterable[str | Path]) -> None:
    """Register files this process reads: :func:`check_target` then refuses to write over them.

    Folders are registered with every file in them (not recursively). Paths that do not exist are ignored.
    """
    for item in paths:
        path = Path(item)
        members = [p for p in path.iterdir() if p.is_file()] if path.is_dir() else [path]
        for member in members:
            identity = _identity(member)
            if identity is not None:
                _PROTECTED[identity] = str(member)


def protected(path: str | Path) -> str | None:
    """The registered input that ``path`` is (by device and inode), or None."""
    identity = _identity(Path(path))
    return None if identity is None else _PROTECTED.get(identity)


@contextlib.contextmanager
def protecting(paths: Iterable[str | Path]) -> Iterator[None]:
    """Protect ``paths`` for the duration of a block (see :func:`protect`)."""
    before = dict(_PROTECTED)
    protect(paths)
    try:
        yield
    finally:
        _PROTECTED.clear()
        _PROTECTED.update(before)


# ----- checks --------------------------------------------------------------------
def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def check_target(path: str | Path, option: str = "path") -> Path:
    """Check that a file may be (re)placed at ``path``; raise :class:`OutputPathError` if not.

    Refused: a symbolic link, anything but a regular file (folder, FIFO,
    device, socket) and a protected input (:class:`OutputPathError`), and a
    missing parent folder (:class:`FileNotFoundError`). An existing regular
    file is accepted (whether to replace it is the caller's decision).
    """
    path = Path(path)
    parent = path.parent
    if not parent.is_dir():
        raise FileNotFoundError(f"{option}: folder {str(parent)!r} for {path.name!r} does not exist")
    if path.is_symlink():
        raise OutputPathError(
            f"{option}: {str(path)!r} is a symbolic link; edstomo does not replace links — "
            "give the link's target or another name"
        )
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return path
    except OSError as error:
        raise OutputPathError(f"{option}: {str(path)!r} cannot be examined ({error.strerror})") from None
    if not stat.S_ISREG(mode):
        raise OutputPathError(f"{option}: {str(path)!r} is {_kind(mode)}; expected a regular file name")
    source = protected(path)
    if source is not None:
        raise OutputPathError(
            f"{option}: {str(path)!r} is an input of this command ({source!r}); write the result to another file"
        )
    return path


def _writable(folder: Path, option: str, what: str) -> None:
    """Raise unless a file can be created in ``folder`` (or its nearest existing ancestor).

    Tried for real (a hidden probe file, removed at once): permission bits do
    not tell for root, read-only mounts, sysfs or network file systems.
    """
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputPathError(f"{option}: {str(existing)!r} is not a folder, so {what} cannot be created")
    try:
        handle, probe = tempfile.mkstemp(prefix=f".{TAG}-probe-{_host()}-{os.getpid()}-", suffix=".tmp", dir=existing)
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise OutputPathError(
            f"{option}: folder {str(existing)!r} is not writable ({reason}), so {what} cannot be written"
        ) from None
    os.close(handle)
    os.unlink(probe)


def check_output_file(
    path: str | Path, *, inputs: Iterable[str | Path] = (), overwrite: bool = False, option: str = "--out"
) -> Path:
    """Check an output file before any computation; protect ``inputs``; remove stale temporaries.

    Parameters
    ----------
    path
        The output file.
    inputs
        Files (or folders) the command reads; they are protected for the rest of the process.
    overwrite
        Whether an existing regular file may be replaced.
    option
        The command-line option or parameter name used in messages.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    OutputPathError
        See the module docstring for the rules.
    """
    path = Path(path)
    protect(inputs)
    if not path.parent.is_dir():
        raise OutputPathError(f"{option}: folder {str(path.parent)!r} for {path.name!r} does not exist")
    check_target(path, option)
    _writable(path.parent, option, repr(path.name))
    if path.exists() and not overwrite:
        raise OutputPathError(
            f"{option}: {str(path)!r} exists; give --overwrite to replace it "
            "(the old file is kept until the new one is complete)"
        )
    remove_stale(path)
    return path


def check_output_folder(
    path: str | Path, *, inputs: Iterable[str | Path] = (), overwrite: bool = False, option: str = "--out"
) -> Path:
    """Check a run folder before any computation; protect ``inputs``; remove stale temporaries in it.

    A folder that does not exist yet is fine (its nearest existing ancestor
    must be writable; it is created when results are written). An existing
    folder must be writable and, unless ``overwrite``, hold nothing but stale
    edstomo temporaries; with ``overwrite`` the files the command writes
    replace those of the same names, inputs excepted. A symbolic link to a
    folder is followed (it is written into, not replaced).

    Raises
    ------
    OutputPathError
        A file or special file where the folder should be, a folder that is
        not writable, or a non-empty folder without ``overwrite``.
    """
    path = Path(path)
    protect(inputs)
    if path.exists() and not path.is_dir():
        raise OutputPathError(f"{option}: {str(path)!r} exists and is not a folder; expected an output folder")
    _writable(path, option, f"folder {str(path)!r}")
    if path.is_dir():
        remove_stale_in(path)
        entries = sorted(p.name for p in path.iterdir())
        if entries and not overwrite:
            shown = ", ".join(entries[:3]) + (" …" if len(entries) > 3 else "")
            raise OutputPathError(
                f"{option}: folder {str(path)!r} is not empty ({len(entries)} entries: {shown}); "
                "give --overwrite to write into it (files of the same names are replaced), or another folder"
            )
    return path


# ----- interrupts ----------------------------------------------------------------
_SIGNALLED: list[int] = []


def interrupted() -> int | None:
    """The signal (SIGINT or SIGTERM) received under :func:`interrupt_handlers`, or None."""
    return _SIGNALLED[-1] if _SIGNALLED else None


def raise_if_interrupted() -> None:
    """Raise :class:`KeyboardInterrupt` if a signal was received (even if something swallowed it)."""
    if _SIGNALLED:
        raise KeyboardInterrupt


def _on_signal(signum: int, frame: FrameType | None) -> None:
    first = not _SIGNALLED
    _SIGNALLED.append(signum)
    if first:
        raise KeyboardInterrupt


@contextlib.contextmanager
def interrupt_handlers() -> Iterator[None]:
    """Handle SIGINT and SIGTERM as a remembered :class:`KeyboardInterrupt` within the block.

    Only in the main thread (elsewhere signals cannot be handled); nested use is harmless.
    A second signal while the first is being handled is remembered but raises nothing,
    so clean-up code runs to its end. Read :func:`interrupted` inside the block: the
    record is cleared when the outermost block ends.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    if all(handler is _on_signal for handler in previous.values()):
        yield
        return
    _SIGNALLED.clear()
    for sig in previous:
        signal.signal(sig, _on_signal)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _SIGNALLED.clear()


class DeferredInterrupts:
    """Hold SIGINT and SIGTERM back during a block that must not be cut short (e.g. starting a cluster).

    A signal that arrives inside the block is recorded (``signalled``) instead
    of raising; the caller acts on it once the block's work can be undone
    cleanly. Under :func:`interrupt_handlers` the signal is also remembered for
    :func:`interrupted` and :func:`raise_if_interrupted`. Only in the main thread.
    """

    def __init__(self) -> None:
        self.signalled: int | None = None
        self._previous: dict[int, Any] = {}

    def _record(self, signum: int, frame: FrameType | None) -> None:
        if self.signalled is None:
            self.signalled = signum
        if self._previous.get(signum) is _on_signal:
            _SIGNALLED.append(signum)

    def __enter__(self) -> DeferredInterrupts:
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._record) for sig in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc_info: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def children_ignore_interrupts() -> Iterator[None]:
    """Start child processes inside this block so that a terminal's Ctrl-C does not reach them.

    A Ctrl-C at a terminal sends SIGINT to every process of the foreground
    group; worker processes that ignore it leave the interrupt to this process,
    which stops them cleanly instead of each printing its own traceback.
    Within the block SIGINT is ignored (children inherit that, across ``exec``
    too, whichever thread starts them) and blocked in this thread: on Linux a
    blocked signal is kept pending rather than discarded, so a Ctrl-C that
    arrives meanwhile is handled here when the block ends. Only in the main
    thread, on POSIX.
    """
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    handler = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, handler)  # the handler first: a pending Ctrl-C then reaches it
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
