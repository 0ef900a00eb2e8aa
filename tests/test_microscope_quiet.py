"""Quiet output (edstomo_microscope.quiet): model notes kept once, third-party deprecations hidden at the CLI."""

from __future__ import annotations

import warnings

import pytest
from edstomo_microscope.quiet import collected_notes, quiet_third_party


class RangeNote(UserWarning):
    pass


def test_notes_are_collected_once_and_other_warnings_pass():
    notes = ["already known"]
    with pytest.warns(RuntimeWarning, match="keep me"), collected_notes(notes, (RangeNote,)) as added:
        for _ in range(3):
            warnings.warn("fitted for 1-100 keV", RangeNote, stacklevel=1)
        warnings.warn("already known", RangeNote, stacklevel=1)
        warnings.warn("keep me", RuntimeWarning, stacklevel=1)
    assert notes == ["already known", "fitted for 1-100 keV"]
    assert added == ["fitted for 1-100 keV"]


def test_third_party_deprecations_are_hidden_and_named_categories_too():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with quiet_third_party(RangeNote):
            warnings.warn("old", DeprecationWarning, stacklevel=1)
            warnings.warn("later", FutureWarning, stacklevel=1)
            warnings.warn("assumed 0.7 sr", RangeNote, stacklevel=1)
            warnings.warn("a real problem", UserWarning, stacklevel=1)
        hyperspy = pytest.importorskip("hyperspy.exceptions")
        with quiet_third_party():
            warnings.warn("Importing X is deprecated", hyperspy.VisibleDeprecationWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["a real problem"]
