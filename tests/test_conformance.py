"""edstomo.testing's conformance suites, run over every registered plugin, and the dot test on every operator."""

from __future__ import annotations

import numpy as np
import pytest
from edstomo import testing
from edstomo.operators import (
    BlockDiagonal,
    Concatenate,
    Diagonal,
    Gradient,
    Identity,
    MatrixOperator,
    MixChannels,
    ParallelBeamProjector,
)
from edstomo.registry import plugins
from edstomo_plugins.solvers.hebt import hebt_operator

#: Options that keep each check fast (a plugin without an entry runs with its defaults).
FAST = {"iterations": 6}


def _names(kind: str) -> list[str]:
    return [info.name for info in plugins.available(kind)]


@pytest.mark.parametrize("name", _names("solver"))
def test_every_solver_conforms(name):
    cls = plugins.solver(name)
    testing.check_solver(cls, **{k: v for k, v in FAST.items() if k in cls.Options.model_fields})


@pytest.mark.parametrize("name", _names("quantifier"))
def test_every_quantifier_conforms(name):
    testing.check_quantifier(plugins.quantifier(name))


@pytest.mark.parametrize("name", [n for n in _names("physics") if n not in ("table", "kfactor", "zeta")])
def test_every_physics_model_conforms(name):
    testing.check_physics(plugins.physics(name))


def test_measured_factor_physics_conforms_with_factors_for_its_lines():
    testing.check_physics(plugins.physics("kfactor"), factors={"Cu_Ka": 1.0, "Au_La": 2.5})
    testing.check_physics(plugins.physics("zeta"), factors={"Cu_Ka": "700 kg/m**2/e", "Au_La": "1500 kg/m**2/e"})


def test_table_physics_conforms_on_its_own_lines():
    testing.check_physics(plugins.physics("table"), lines=("Ag_La", "Au_Ma"), beam_energy="100 keV")


@pytest.mark.parametrize("name", _names("metric"))
def test_every_metric_conforms(name):
    testing.check_metric(plugins.metric(name))


W = ParallelBeamProjector(np.deg2rad([-50.0, 0.0, 35.0, 80.0]), (7, 9), n_det=11, dtype="float64")
OPERATORS = {
    "projector": W,
    "projector-float32": ParallelBeamProjector(np.deg2rad([-30.0, 20.0]), (6, 6)),
    "adjoint": W.T,
    "composed": MixChannels([[1.0, 2.0], [0.5, 0.0], [3.0, 1.0]], W.range_shape) @ BlockDiagonal(W, 2),
    "sum-and-scale": 2.0 * W - 0.5 * W,
    "hebt": hebt_operator(W, 3, 0.7),
    "concatenate": Concatenate(
        [0.3 * BlockDiagonal(W, 2), MixChannels(np.ones((1, 2)), W.range_shape) @ BlockDiagonal(W, 2)]
    ),
    "diagonal": Diagonal(np.random.default_rng(1).random((4, 11))) @ W,
    "identity": Identity((3, 4)),
    "matrix": MatrixOperator(np.random.default_rng(2).random((5, 3))),
    "gradient-2d": Gradient((6, 7)),
    "gradient-3d": Gradient((5, 4, 2, 3), axes=(0, 1, 3), spacing=(1.0, 1.0, 2.0)),
    "subset": hebt_operator(W, 2, 0.4).subset([1, 3]),
}


@pytest.mark.parametrize("name", OPERATORS)
def test_every_operator_passes_the_dot_test(name):
    testing.dottest(OPERATORS[name], batch=(2, 3))


def test_dot_test_catches_a_wrong_adjoint():
    class Wrong(MatrixOperator):
        def _adjoint(self, y):
            return 1.01 * super()._adjoint(y)

    with pytest.raises(AssertionError, match="relative"):
        testing.dottest(Wrong(np.random.default_rng(3).random((4, 4))))


def test_solver_check_catches_coupled_slices():
    """A solver that couples slices (here: a global mean) fails the chunk check."""
    base = plugins.solver("sirt")

    class Coupled(base):
        name = "coupled"

        def finish(self, algorithm, problem):
            algorithm.x += algorithm.x.mean()

    with pytest.raises(AssertionError, match="chunks differ"):
        testing.check_solver(Coupled, iterations=3)
