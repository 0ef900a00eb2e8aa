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
