"""Shared test fixtures."""

from pathlib import Path

import pytest

#: The read-only shared folder beside the repository (absent outside the development machines).
SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(scope="session")
def paper_experiment():
    from edstomo_plugins.studies.yuan2020 import phantom_experiment as yuan2020_phantom_experiment

    return yuan2020_phantom_experiment()


@pytest.fixture(scope="session")
def paper_factors(paper_experiment):
    import edstomo as et

    return et.plugins.physics("table")().compute(paper_experiment)


@pytest.fixture(scope="session")
def paper_truth(paper_experiment):
    import edstomo as et

    return et.plugins.phantom("core-shell")().generate(paper_experiment)


def edstomo_command() -> list[str]:
    """The installed ``edstomo`` console script beside this interpreter (else ``python -m edstomo.cli``)."""
    import shutil
    import sys

    script = Path(sys.executable).with_name("edstomo")
    if script.is_file():
        return [str(script)]
    found = shutil.which("edstomo")
    return [found] if found else [sys.executable, "-m", "edstomo.cli"]


def run_edstomo(*args, cwd=None, timeout=600, env=None):
    """Run the real ``edstomo`` command in a subprocess; the CompletedProcess (text stdout/stderr)."""
    import os
    import subprocess

    environment = {**os.environ, "MPLBACKEND": "Agg", **(env or {})}
    return subprocess.run(
        [*edstomo_command(), *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environment,
        check=False,
    )


@pytest.fixture(scope="session")
def small_experiment():
    """A quick version of the paper's phantom experiment: 7 tilts, 24 positions of 6 nm, 2 slices."""
    from edstomo.experiment import Experiment
    from edstomo_plugins.studies.yuan2020 import phantom_experiment as yuan2020_phantom_experiment

    definition = yuan2020_phantom_experiment().to_dict()
    definition.update(
        name="small",
        tilts={"start": "-60 deg", "stop": "60 deg", "step": "20 deg"},
        scan={"positions": 24, "pixel_size": "6 nm", "slices": 2},
    )
    return Experiment.model_validate(definition)


@pytest.fixture(scope="session")
def small_series_file(tmp_path_factory, small_experiment):
    """A noisy tilt series of the small experiment (HAADF, Ag_La, Au_Ma) saved to HDF5."""
    import edstomo as et

    factors = et.plugins.physics("table")().compute(small_experiment)
    truth = et.plugins.phantom("core-shell")().generate(small_experiment)
    series = et.plugins.forward("thin-film")(small_experiment, factors).simulate(truth, noise="poisson", seed=1)
    return series.save(tmp_path_factory.mktemp("small") / "series.h5")
