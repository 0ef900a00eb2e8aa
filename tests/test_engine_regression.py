"""sirt and hebt-sirt on the engine give the maps of the solvers before it (commit 33d8327).

tests/data/pre_engine_solvers.npz holds a small noisy tilt series and the maps the pre-engine
solvers made of it (20 iterations; HEBT α = 0.7, given ratios), in float32 and float64.
SIRT is the same computation in the same order: bit for bit. HEBT's row and column sums now come
from the generic operator code (the HAADF row is mixed in the sinogram domain): equal to the
rounding of the arithmetic type.
"""

from __future__ import annotations

from pathlib import Path

import edstomo as et
import numpy as np
import pytest
from edstomo.data import TiltSeries

REFERENCE = Path(__file__).parent / "data" / "pre_engine_solvers.npz"


@pytest.fixture(scope="module")
def reference():
    with np.load(REFERENCE) as stored:
        return dict(stored)


def _series(reference) -> TiltSeries:
    angles = et.ureg.Quantity(reference["angles"], "deg")
    return TiltSeries(reference["data"], ["HAADF", "Ag_La", "Au_Ma"], angles, et.ureg.Quantity(1, "nm"))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sirt_is_bit_identical_to_the_pre_engine_solver(reference, dtype):
    volume = et.plugins.solver("sirt")(iterations=20, dtype=dtype).solve(_series(reference))
    np.testing.assert_array_equal(volume.data, reference[f"sirt_{dtype}"])


@pytest.mark.parametrize(("dtype", "rtol"), [("float32", 2e-6), ("float64", 1e-13)])
def test_hebt_equals_the_pre_engine_solver_to_rounding(reference, dtype, rtol):
    solver = et.plugins.solver("hebt-sirt")(iterations=20, alpha=0.7, ratios={"Ag_La": 3.0, "Au_Ma": 5.0}, dtype=dtype)
    volume = solver.solve(_series(reference))
    expected = reference[f"hebt_{dtype}"]
    np.testing.assert_allclose(volume.data, expected, rtol=0, atol=rtol * np.abs(expected).max())
