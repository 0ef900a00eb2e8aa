"""Issue 10, "Data loss" and "Leftovers and interrupts": output paths, temporaries and interrupts.

The command-line cases run the real ``edstomo`` command in a subprocess.
"""

from __future__ import annotations

import hashlib
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import edstomo_command, run_edstomo
from edstomo import outputs
from edstomo.cli import main
from edstomo.data import TiltSeries
from edstomo.errors import OutputPathError
from edstomo.io import atomic_path, atomic_save_figure, atomic_write_text

SOLVE_QUICKLY = ("--set", "iterations=2", "--no-progress", "--overwrite")
SOLVE_SLOWLY = ("--set", "iterations=400", "--chunk-slices", "1", "--no-progress")


def digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def leftovers(folder: Path) -> list[str]:
    """Hidden edstomo temporaries and chunk folders in ``folder`` (recursively)."""
    return sorted(str(p.relative_to(folder)) for p in Path(folder).rglob(".*edstomo-*"))


def one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edstomo "), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


# ----- "Data loss" ---------------------------------------------------------------------
def test_solve_over_its_own_input_is_refused_and_the_input_kept(small_series_file, tmp_path):
    series = tmp_path / "S.h5"
    series.write_bytes(small_series_file.read_bytes())
    before = digest(series)
    result = run_edstomo("solve", series, "--out", series, "--set", "iterations=2", "--no-progress")
    one_line_error(result, "--out", "S.h5", "is an input of this command")
    assert digest(series) == before
    assert leftovers(tmp_path) == []


def test_a_hard_link_to_the_input_is_the_input(small_series_file, tmp_path):
    series = tmp_path / "S.h5"
    series.write_bytes(small_series_file.read_bytes())
    os.link(series, tmp_path / "same.h5")
    result = run_edstomo("solve", series, "--out", tmp_path / "same.h5", "--set", "iterations=2", "--overwrite")
    one_line_error(result, "is an input of this command")
    assert TiltSeries.load(series).shape == TiltSeries.load(small_series_file).shape


def test_the_input_check_comes_before_any_computation(small_series_file, tmp_path, monkeypatch, capsys):
    import edstomo.distributed

    def never(*args, **kwargs):
        raise AssertionError("solve_file ran although the output is the input")

    monkeypatch.setattr(edstomo.distributed, "solve_file", never)
    series = tmp_path / "S.h5"
    series.write_bytes(small_series_file.read_bytes())
    assert main(["solve", str(series), "--out", str(series), "--solver", "hebt-sirt"]) == 1  # no ratio fit either
    assert "is an input" in capsys.readouterr().err


def test_simulate_over_its_experiment_file_is_refused(small_experiment, tmp_path):
    path = small_experiment.save(tmp_path / "exp.yaml")
    before = digest(path)
    result = run_edstomo("simulate", path, "--out", path)
    one_line_error(result, "exp.yaml", "is an input of this command")
    assert digest(path) == before


@pytest.mark.parametrize("kind", ["fifo", "symlink", "device", "folder"])
def test_special_files_at_out_are_refused_and_left_as_they_are(kind, small_experiment, tmp_path):
    experiment = small_experiment.save(tmp_path / "exp.yaml")
    out = tmp_path / "out.h5"
    target = tmp_path / "target.h5"
    target.write_bytes(b"precious")
    if kind == "fifo":
        os.mkfifo(out)
    elif kind == "symlink":
        out.symlink_to(target)
    elif kind == "folder":
        out.mkdir()
    elif os.geteuid() == 0:
        os.mknod(out, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # a private /dev/null
    else:
        pytest.skip("creating a device node needs root")
    mode = out.lstat().st_mode
    result = run_edstomo("simulate", experiment, "--out", out, "--overwrite")
    expected = {"fifo": "FIFO", "symlink": "symbolic link", "device": "a device", "folder": "a folder"}[kind]
    one_line_error(result, "--out", expected)
    assert out.lstat().st_mode == mode  # still the FIFO, link, device or folder
    assert target.read_bytes() == b"precious"


def test_an_existing_output_needs_overwrite_and_is_then_replaced(small_experiment, tmp_path):
    experiment = small_experiment.save(tmp_path / "exp.yaml")
    out = tmp_path / "S.h5"
    out.write_bytes(b"an older result")
    refused = run_edstomo("simulate", experiment, "--out", out)
    one_line_error(refused, "exists", "--overwrite")
    assert out.read_bytes() == b"an older result"
    replaced = run_edstomo("simulate", experiment, "--out", out, "--overwrite", "--seed", "3")
    assert replaced.returncode == 0, replaced.stderr
    assert TiltSeries.load(out).shape == (3, 7, 24, 2)


def test_help_says_how_outputs_are_treated(capsys):
    top = run_edstomo("--help")
    assert top.returncode == 0
    for fragment in ("--overwrite", "exit codes", "130", "symbolic link"):
        assert fragment in top.stdout
    assert "--overwrite" in run_edstomo("solve", "--help").stdout
    for command in ("simulate", "solve", "study", "reconstruct", "quantify"):
        with pytest.raises(SystemExit) as stop:
            main([command, "--help"])
        text = capsys.readouterr().out
        assert stop.value.code == 0 and "--overwrite" in text and "--allow-large" in text, command


def test_a_run_folder_must_be_empty_unless_overwrite(tmp_path, capsys):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "summary.json").write_text("{}")
    assert main(["study", "yuan2020-phantom", "--out", str(folder), "--set", "quick=true"]) == 1
    assert "not empty" in capsys.readouterr().err
    assert (folder / "summary.json").read_text() == "{}"


def test_protected_inputs_are_never_replaced_by_any_write(tmp_path):
    source = tmp_path / "input.txt"
    source.write_text("input")
    with outputs.protecting([source]):
        with pytest.raises(OutputPathError, match="is an input"):
            atomic_write_text(source, "output")
    assert source.read_text() == "input"
    atomic_write_text(source, "no longer protected")
    assert source.read_text() == "no longer protected"


def test_inputs_are_protected_for_one_command_only(small_experiment, tmp_path):
    experiment = small_experiment.save(tmp_path / "exp.yaml")
    assert main(["simulate", str(experiment), "--out", str(tmp_path / "S.h5")]) == 0
    assert outputs.protected(experiment) is None  # a later command (or the library) may write it again
    small_experiment.save(experiment)


def test_figures_are_written_atomically(tmp_path):
    from matplotlib.figure import Figure

    class FailingFigure(Figure):
        def savefig(self, fname, **options):
            Path(fname).write_bytes(b"half a figure")
            raise RuntimeError("disk full")

    path = tmp_path / "figure.png"
    path.write_bytes(b"the previous figure")
    with pytest.raises(RuntimeError, match="disk full"):
        atomic_save_figure(FailingFigure(), path)
    assert path.read_bytes() == b"the previous figure" and leftovers(tmp_path) == []
    atomic_save_figure(Figure(figsize=(1, 1)), path)
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


# ----- "Leftovers and interrupts" ----------------------------------------------------------
def dead_pid() -> int:
    """The pid of a process that has ended."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_stale_temporaries_of_a_killed_writer_are_removed_by_the_next_write(tmp_path):
    out = tmp_path / "X.h5"
    host = outputs._host()
    stale = tmp_path / f".X.h5.edstomo-{host}-{dead_pid()}-abc123.tmp"
    stale.write_bytes(b"x" * 1000)
    chunks = tmp_path / f".X.h5.edstomo-{host}-{dead_pid()}-def456.chunks"
    chunks.mkdir()
    (chunks / "chunk_000000000_000000016.h5").write_bytes(b"y")
    alive = tmp_path / f".X.h5.edstomo-{host}-{os.getppid()}-ghi789.tmp"  # the writer still runs
    alive.write_bytes(b"z")
    elsewhere = tmp_path / f".X.h5.edstomo-otherhost-{dead_pid()}-jkl012.tmp"  # cannot be checked
    elsewhere.write_bytes(b"w")
    other_output = tmp_path / f".Y.h5.edstomo-{host}-{dead_pid()}-mno345.tmp"
    other_output.write_bytes(b"v")
    atomic_write_text(out, "new")
    assert out.read_text() == "new"
    assert not stale.exists() and not chunks.exists()
    assert alive.exists() and elsewhere.exists() and other_output.exists()


def test_a_failed_write_leaves_nothing_and_the_old_file(tmp_path):
    out = tmp_path / "X.h5"
    out.write_text("old")
    for error in (RuntimeError("boom"), KeyboardInterrupt()):
        with pytest.raises(type(error)):
            with atomic_path(out) as temporary:
                temporary.write_text("half")
                raise error
    assert out.read_text() == "old"
    assert leftovers(tmp_path) == []


def test_an_interrupt_swallowed_during_a_write_still_stops_the_rename(tmp_path):
    """A SIGINT whose KeyboardInterrupt a finaliser swallowed must not let the write complete."""
    out = tmp_path / "X.h5"
    out.write_text("old")
    with outputs.interrupt_handlers():
        with pytest.raises(KeyboardInterrupt):
            with atomic_path(out) as temporary:
                temporary.write_text("new")
                try:
                    os.kill(os.getpid(), signal.SIGINT)
                    for _ in range(1000):  # the handler runs between bytecodes
                        pass
                except KeyboardInterrupt:
                    pass  # swallowed, as inside a __del__ or a library callback
        assert outputs.interrupted() == signal.SIGINT
    assert out.read_text() == "old"
    assert leftovers(tmp_path) == []
    assert outputs.interrupted() is None  # cleared when the handlers are removed


def _run_script(script: str, *args: str) -> subprocess.CompletedProcess:
    """Run ``script`` (which calls ``edstomo.cli.main``) in a fresh interpreter."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "MPLBACKEND": "Agg"},
    )


def test_ctrl_c_inside_a_finaliser_during_the_dask_assembly_stops_with_130(small_series_file, tmp_path):
    """The issue's case: Ctrl-C during assembly printed "Exception ignored … KeyboardInterrupt", then exit 0.

    The SIGINT is delivered while a finaliser (``__del__``) runs in the assembly step, so the
    KeyboardInterrupt is raised where Python can only ignore it.
    """
    out = tmp_path / "V.h5"
    out.write_bytes(b"the previous volume")
    script = """
        import os, signal, sys
        from edstomo import cli, distributed

        original = distributed._assemble

        class Finaliser:
            def __del__(self):
                os.kill(os.getpid(), signal.SIGINT)
                for _ in range(100000):  # the KeyboardInterrupt is raised in here, and swallowed
                    pass

        def assemble(chunks, out, record):
            Finaliser()
            return original(chunks, out, record)

        distributed._assemble = assemble
        if __name__ == "__main__":
            sys.exit(cli.main(sys.argv[1:]))
    """
    path = tmp_path / "inject.py"
    path.write_text(textwrap.dedent(script))
    result = subprocess.run(
        [sys.executable, str(path), "solve", str(small_series_file), "--out", str(out), *SOLVE_QUICKLY],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 130, result.stderr
    assert "Exception ignored" not in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("edstomo solve: interrupted")
    assert out.read_bytes() == b"the previous volume"
    assert leftovers(tmp_path) == []


def test_sigterm_is_handled_like_ctrl_c(small_experiment, tmp_path):
    experiment = small_experiment.save(tmp_path / "exp.yaml")
    out = tmp_path / "S.h5"
    out.write_bytes(b"old")
    script = """
        import os, signal, sys
        from edstomo import cli, data

        original = data.save

        def save(obj, path, **options):
            os.kill(os.getpid(), signal.SIGTERM)
            return original(obj, path, **options)

        data.save = save
        sys.exit(cli.main(sys.argv[1:]))
    """
    result = _run_script(script, "simulate", str(experiment), "--out", str(out), "--overwrite")
    assert result.returncode == 143, result.stderr
    assert result.stderr.strip() == (
        "edstomo simulate: terminated (SIGTERM); unfinished outputs were not written, old files are unchanged"
    )
    assert out.read_bytes() == b"old"
    assert leftovers(tmp_path) == []


def test_kill_9_during_solve_leaves_a_chunk_folder_that_the_next_run_removes(small_series_file, tmp_path):
    """Kill the command once its chunk folder exists; the next run of the same output removes it."""
    out = tmp_path / "V.h5"
    process = subprocess.Popen(
        [*edstomo_command(), "solve", str(small_series_file), "--out", str(out), *SOLVE_SLOWLY],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        for _ in range(1200):
            if list(tmp_path.glob(".V.h5.edstomo-*.chunks")) or process.poll() is not None:
                break
            time.sleep(0.1)
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    assert process.returncode == -signal.SIGKILL
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".chunks")], "no chunk folder to leave behind"
    again = run_edstomo("solve", small_series_file, "--out", out, "--set", "iterations=2", "--no-progress")
    assert again.returncode == 0, again.stderr
    assert leftovers(tmp_path) == []
    with h5py.File(out) as file:
        assert np.isfinite(file["data"][()]).all()


def _parser_running(command):
    """A parser with one sub-command ``go`` that runs ``command`` (for edstomo.safety.main)."""
    import argparse

    def build(argv):
        parser = argparse.ArgumentParser(prog="edstomo")
        sub = parser.add_subparsers(dest="command", required=True)
        sub.add_parser("go").set_defaults(func=command)
        return parser

    return build


def test_a_library_that_logs_the_interrupt_prints_no_traceback(capsys, monkeypatch):
    """SQLAlchemy's pool logs a Ctrl-C that arrives while pyxray returns a connection; one line is said."""
    import logging

    monkeypatch.setattr(logging.root, "handlers", [])  # as in the command: no handler, logging's last resort
    import signal

    from edstomo import safety

    def command(args):
        try:
            os.kill(os.getpid(), signal.SIGINT)
        except BaseException:
            logging.getLogger("edstomo-test.pool").error("Exception during reset or similar", exc_info=True)
            raise
        return 0

    assert safety.main(_parser_running(command), ["go"]) == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err and "Exception during reset" not in err
    assert err.strip().splitlines()[-1].endswith("unfinished outputs were not written, old files are unchanged")


def test_other_logged_errors_still_reach_stderr(capsys, monkeypatch):
    import logging

    monkeypatch.setattr(logging.root, "handlers", [])

    from edstomo import safety

    def command(args):
        try:
            raise RuntimeError("a library's own failure")
        except RuntimeError:
            logging.getLogger("edstomo-test.pool").error("Exception during reset or similar", exc_info=True)
        return 0

    assert safety.main(_parser_running(command), ["go"]) == 0
    err = capsys.readouterr().err
    assert "Exception during reset or similar" in err and "RuntimeError: a library's own failure" in err
