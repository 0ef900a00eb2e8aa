"""Quiet, useful output: third-party deprecation warnings silenced at the command line, model notes kept once.

* :func:`quiet_third_party` — a context in which ``DeprecationWarning``,
  ``PendingDeprecationWarning``, ``FutureWarning`` and the "visible" deprecation
  warnings of NumPy and HyperSpy are not shown (HyperSpy,
  RosettaSciIO, etspy and their dependencies emit them on import and use;
  they concern those packages' authors, not the user of a command).
* :func:`collected_notes` — a context that turns warnings of given categories
  (e.g. the physics' ``ModelRangeWarning``: "Browning fitted only to 100
  keV") into notes, each distinct message once, instead of printing them
  every time the model runs. The caller keeps the notes in the provenance and
  prints them once.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["THIRD_PARTY_CATEGORIES", "collected_notes", "quiet_third_party"]

#: Warning categories that :func:`quiet_third_party` hides.
THIRD_PARTY_CATEGORIES: tuple[type[Warning], ...] = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)


@contextmanager
def quiet_third_party(*also: type[Warning]) -> Iterator[None]:
    """Hide deprecation and future warnings inside the block (for command-line entry points).

    ``also`` names further categories to hide, for warnings whose content the
    command prints anyway (e.g. the assumed values of a ``MetadataWarning``,
    which are among the run's notes).
    """
    with warnings.catch_warnings():
        for category in (*THIRD_PARTY_CATEGORIES, *_visible_deprecations(), *also):
            warnings.simplefilter("ignore", category)
        yield


def _visible_deprecations() -> list[type[Warning]]:
    """Deprecation warnings that packages make visible as user warnings (NumPy's, HyperSpy's), where installed."""
    import importlib.util

    import numpy as np

    found: list[type[Warning]] = [getattr(np, "exceptions", np).VisibleDeprecationWarning]  # NumPy < 1.25: np.
    if importlib.util.find_spec("hyperspy") is not None:
        from hyperspy.exceptions import VisibleDeprecationWarning

        found.append(VisibleDeprecationWarning)
    return found


@contextmanager
def collected_notes(notes: list[str], categories: tuple[type[Warning], ...] = (UserWarning,)) -> Iterator[list[str]]:
    """Record warnings of ``categories`` raised in the block as notes (each distinct message once).

    The new notes are appended to ``notes`` (messages already there are not
    repeated) and also yielded as a list of their own; warnings of other
    categories pass through unchanged.

    Examples
    --------
    >>> notes = []
    >>> with collected_notes(notes):
    ...     warnings.warn("fitted for 1-100 keV", UserWarning)
    ...     warnings.warn("fitted for 1-100 keV", UserWarning)
    >>> notes
    ['fitted for 1-100 keV']
    """
    added: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield added
    for item in caught:
        if issubclass(item.category, categories):
            message = str(item.message)
            if message not in notes:
                notes.append(message)
                added.append(message)
        else:
            warnings.warn_explicit(item.message, item.category, item.filename, item.lineno)
