"""Issue 10, "Crash": a truncated or damaged microscope file gives an error naming it, never a crash.

Uses the shared openNCEM Bruker files (copied to tmp_path and cut); skipped when ``../shared``
or HyperSpy/exSpy/RosettaSciIO are absent. The command-line cases run the real ``edstomo``.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

pytest.importorskip("hyperspy")
pytest.importorskip("exspy")
pytest.importorskip("rsciio")

from conftest import SHARED, run_edstomo
from edstomo_microscope import reader
from edstomo_microscope.loading import load_tilt_series
from edstomo_microscope.reader import UnreadableFileError

DATA = SHARED / "data" / "openNCEM_L2083-K-4-1_EDS_tilt_series"
pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason="the shared openNCEM data set is not available")

MB = 1 << 20


def cut(source: Path, size: int, target: Path) -> Path:
    """A copy of the first ``size`` bytes of ``source``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(source, "rb") as stream:
        target.write_bytes(stream.read(size))
    return target


def raw_bruker_read(path: str) -> int:
    """Read a Bruker file with HyperSpy directly, skipping edstomo's container check (in the reader process)."""
    import warnings

    import hyperspy.api as hs

    warnings.simplefilter("ignore")
    return len(hs.load(str(path), cutoff_at_kV=10))


def segfault(path: str) -> None:
    """Crash the process that runs it (dereference address 0)."""
    import ctypes

    ctypes.string_at(0)


@pytest.mark.parametrize("size", [1 * MB, 2 * MB, 500_000])
def test_a_truncated_bcf_is_named_and_does_not_crash_reconstruct(size, tmp_path):
    folder = tmp_path / "tilts"
    folder.mkdir()
    for angle in (-10, 10):
        shutil.copy(DATA / f"{angle}.bcf", folder / f"{angle}.bcf")
    bad = cut(DATA / "0.bcf", size, folder / "0.bcf")
    result = run_edstomo("reconstruct", folder, "--out", tmp_path / "run", "--rebin", "8", "--no-figures")
    assert result.returncode == 1, (result.returncode, result.stderr[-2000:])  # not 139 (SIGSEGV) or 135 (SIGBUS)
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("edstomo reconstruct: error: 1 of 3 files cannot be read: ")
    assert f"{bad}: cannot be read (" in message
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_one_truncated_file_is_named_by_the_loader(tmp_path):
    bad = cut(DATA / "0.bcf", 2 * MB, tmp_path / "0.bcf")
    with pytest.raises(UnreadableFileError, match=r"0\.bcf: cannot be read \(the file is truncated: it holds 2097152"):
        load_tilt_series([bad], ["Fe_Ka"], rebin=8)


def test_every_unreadable_file_is_listed_and_nothing_is_loaded(tmp_path):
    files = [shutil.copy(DATA / "10.bcf", tmp_path / "10.bcf")]
    files.append(cut(DATA / "0.bcf", 1 * MB, tmp_path / "0.bcf"))
    files.append(cut(DATA / "-10.bcf", 100, tmp_path / "-10.bcf"))
    files.append(cut(DATA / "20.bcf", 4_000, tmp_path / "20.bcf"))
    with pytest.raises(UnreadableFileError) as caught:
        load_tilt_series(files, ["Fe_Ka"], rebin=8)
    message = str(caught.value)
    assert message.startswith("3 of 4 files cannot be read: ")
    assert "0.bcf: cannot be read (the file is truncated" in message
    assert "-10.bcf: cannot be read (its Bruker container is damaged" in message
    assert "20.bcf: cannot be read (" in message
    assert "10.bcf: cannot be read" not in message.replace("-10.bcf", "")


def test_a_crash_in_the_reader_process_is_an_error_naming_the_file(tmp_path):
    sys.path.insert(0, str(Path(__file__).parent))  # so that the reader process imports this module
    with pytest.raises(UnreadableFileError, match=r"x\.bcf: cannot be read \(the file reader crashed with SIGSEGV"):
        reader.call(segfault, tmp_path / "x.bcf")
    assert reader.call(raw_bruker_read, DATA / "0.bcf") >= 1  # a new reader process reads the next file


@pytest.mark.parametrize("size", [1 * MB, 2 * MB, 3_000_000])
def test_rosettasciio_on_a_truncated_bcf_cannot_take_the_process_down(size, tmp_path):
    """Without edstomo's container check the reader dies (SIGSEGV, SIGBUS) or raises; edstomo names the file."""
    bad = cut(DATA / "0.bcf", size, tmp_path / "cut.bcf")
    sys.path.insert(0, str(Path(__file__).parent))
    with pytest.raises(UnreadableFileError, match=r"cut\.bcf: cannot be read \("):
        reader.call(raw_bruker_read, bad)


@pytest.mark.filterwarnings("ignore::edstomo_microscope.metadata.MetadataWarning")
def test_a_valid_series_still_loads_through_the_reader_process():
    series = load_tilt_series([DATA / "-10.bcf", DATA / "10.bcf"], ["Fe_Ka"], rebin=8)
    assert series.shape == (2, 2, 32, 32)
    assert series.experiment.beam_energy.m_as("keV") == 200.0  # metadata came back in edstomo's unit registry
    assert (series.data >= 0).all() and series.data[1].sum() > 0
