"""Checks for plugin authors: the adjoint dot test and conformance suites for each plugin kind.

Use them in your plugin's own tests::

    from edstomo.testing import check_solver, dottest

    def test_my_solver_conforms():
        check_solver(MySolver, iterations=5)

    def test_my_operator_is_adjoint():
        dottest(MyOperator(...))

Each check raises ``AssertionError`` with a message saying what the plugin got
wrong.  edstomo's own test suite runs them over every registered plugin
(``tests/test_conformance.py``).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from . import backend
from .algorithms import Callback, IterationState
from .data import HAADF, CompositionMaps, TiltSeries, Volume
from .experiment import EDSDetector, Experiment, HAADFDetector, Scan, TiltScheme
from .factors import LineParameters, PhysicsFactors
from .interfaces import MAP_FACTORS, Metric, PhysicsModel, Quantifier, Solver
from .operators import LinearOperator, projector_for
from .units import ureg

__all__ = [
    "check_metric",
    "check_physics",
    "check_quantifier",
    "check_solver",
    "dottest",
    "solver_test_series",
]


def dottest(
    operator: LinearOperator, *, batch: tuple[int, ...] = (3,), rtol: float | None = None, seed: int = 0
) -> float:
    """Check ``⟨A x, y⟩ = ⟨x, Aᵀ y⟩`` for random ``x``, ``y`` with trailing batch axes.

    Parameters
    ----------
    operator : LinearOperator
        The operator to check.
    batch : tuple of int
        Batch axes of the random inputs.
    rtol : float, optional
        Allowed relative difference; default 1e-10 when the operator keeps
        float64, 1e-4 when its output is float32.
    seed : int
        Seed of the random inputs.

    Returns
    -------
    float
        The relative difference found.
    """
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(operator.domain_shape + batch)
    y = rng.standard_normal(operator.range_shape + batch)
    forward = backend.to_numpy(operator.forward(x))
    adjoint = backend.to_numpy(operator.adjoint(y))
    assert forward.shape == operator.range_shape + batch, (
        f"{operator!r}: forward gives shape {forward.shape}, expected {operator.range_shape + batch}"
    )
    assert adjoint.shape == operator.domain_shape + batch, (
        f"{operator!r}: adjoint gives shape {adjoint.shape}, expected {operator.domain_shape + batch}"
    )
    if rtol is None:
        rtol = 1e-4 if np.float32 in (forward.dtype, adjoint.dtype) else 1e-10
    lhs = float(np.vdot(forward.astype(np.float64), y))
    rhs = float(np.vdot(x, adjoint.astype(np.float64)))
    scale = max(abs(lhs), abs(rhs), 1e-300)
    difference = abs(lhs - rhs) / scale
    assert difference <= rtol, (
        f"{operator!r}: <Ax, y> = {lhs:.12g} but <x, A^T y> = {rhs:.12g} (relative {difference:.3g})"
    )
    return difference


# ------------------------------------------------------------------ solvers
RATIOS = {"Ag_La": 3.0, "Au_Ma": 5.0}


def solver_test_series(slices: int = 4, size: int = 12, tilts: int = 9, seed: int = 0) -> TiltSeries:
    """A small consistent tilt series for solver checks: HAADF = Σ r_A I_A, with its experiment.

    Two lines (``Ag_La``, ``Au_Ma``) of random non-negative maps in a disk, projected
    exactly, as Poisson counts (so that solvers needing raw counts get them);
    the HAADF is the ratio-weighted sum of the lines' expected signals.
    """
    rng = np.random.default_rng(seed)
    angles = np.linspace(-60.0, 60.0, tilts)
    z, x = np.mgrid[:size, :size] - (size - 1) / 2
    disk = (z**2 + x**2 <= (0.4 * size) ** 2)[:, :, None, None]
    maps = 20.0 * rng.random((size, size, len(RATIOS), slices)) * disk
    projector = projector_for(np.deg2rad(angles), (size, size), "strip", "float64")
    expected = projector.forward(maps)  # (tilts, positions, lines, slices)
    counts = rng.poisson(expected).astype(float)
    haadf = sum(ratio * expected[:, :, k] for k, ratio in enumerate(RATIOS.values()))
    data = np.concatenate([haadf[None], np.moveaxis(counts, 2, 0)])
    experiment = Experiment(
        name="solver-check",
        beam_energy="100 keV",
        lines=list(RATIOS),
        tilts=TiltScheme(angles=[f"{a} deg" for a in angles]),
        scan=Scan(positions=size, pixel_size="1 nm", slices=slices),
        haadf=HAADFDetector(electrons_per_pixel="1e5 e", inner_angle="94 mrad", outer_angle="611 mrad"),
        eds=EDSDetector(electrons_per_pixel="1e8 e", solid_angle="0.7 sr"),
    )
    return TiltSeries(
        data, [HAADF, *RATIOS], ureg.Quantity(angles, "deg"), ureg.Quantity(1.0, "nm"), experiment=experiment
    )


class _StopAt(Callback):
    def __init__(self, iteration: int) -> None:
        self.iteration, self.seen = iteration, []

    def on_step(self, state: IterationState) -> bool:
        self.seen.append(state.iteration)
        return state.iteration >= self.iteration


def check_solver(solver_cls: type[Solver], **options: Any) -> None:
    """Conformance of a solver plugin on :func:`solver_test_series`.

    Checks: the result is a Volume of one map per EDS line (in the data's
    order, or in the order asked), with the right shape and ``factor``; the
    provenance names the solver and its options; a callback can stop an
    iterative solver; slices solved in chunks (after :meth:`Solver.prepare` on
    the whole series) equal the whole solve; ``device="auto"`` runs on the CPU
    when there is no GPU; ``nonnegativity=True`` keeps maps >= 0; the options
    are JSON-serialisable.

    Parameters
    ----------
    solver_cls : type of Solver
        The plugin class.
    **options
        Options for every solve (e.g. a small ``iterations`` to keep the check fast);
        ``dtype="float64"`` is added when the solver has that option.
    """
    fields = solver_cls.Options.model_fields
    if "dtype" in fields:
        options.setdefault("dtype", "float64")
    series = solver_test_series()
    if "haadf" not in solver_cls.requires:
        series = series.select(list(RATIOS))
    solver = solver_cls(**options)
    json.dumps(solver.parameters())
    name = solver_cls.name

    volume = solver.solve(series)
    lines = [c for c in series.channels if c != HAADF]
    assert isinstance(volume, Volume), f"{name}: solve() returned {type(volume).__name__}, not a Volume"
    assert volume.channels == lines, f"{name}: maps {volume.channels} are not one per EDS line {lines}, in order"
    assert volume.shape == (len(lines), series.n_positions, series.n_positions, series.n_slices), (
        f"{name}: volume shape {volume.shape} is not (channels, positions, positions, slices)"
    )
    assert volume.factor == solver_cls.produces and volume.factor in (*MAP_FACTORS, None), (
        f"{name}: Volume.factor {volume.factor!r} differs from the declared produces {solver_cls.produces!r}"
    )
    step = volume.provenance[-1]
    assert step.get("action") == "reconstruct" and step.get("plugin") == name, (
        f"{name}: the last provenance step {step.get('action')!r}/{step.get('plugin')!r} is not its reconstruction"
    )
    assert volume.provenance[:-1] == series.provenance, f"{name}: the series' provenance is not kept"
    json.dumps(step)
    if "nonnegativity" in fields and solver.options.nonnegativity:
        assert volume.data.min() >= 0, f"{name}: nonnegativity=True but the maps reach {volume.data.min():g}"

    reverse = solver.with_options(channels=lines[::-1]).solve(series)
    assert reverse.channels == lines[::-1], f"{name}: channels={lines[::-1]} gave maps {reverse.channels}"
    np.testing.assert_allclose(
        reverse.data[::-1], volume.data, rtol=1e-6, atol=1e-9 * max(1.0, float(np.abs(volume.data).max()))
    )

    if "iterations" in fields and isinstance(solver.options.iterations, int) and solver.options.iterations >= 3:
        stop = _StopAt(2)
        stopped = solver.solve(series, callbacks=stop)
        assert stop.seen == [1, 2], f"{name}: callbacks saw iterations {stop.seen}, expected [1, 2] then a stop"
        assert stopped.provenance[-1]["parameters"].get("iterations_run") == 2, (
            f"{name}: the provenance does not record the 2 iterations run before the stop"
        )

    prepared = solver.prepare(series)
    whole = prepared.solve(series).data
    parts = [prepared.solve(series.replace(data=series.data[..., a:b])).data for a, b in ((0, 1), (1, 4))]
    np.testing.assert_allclose(
        np.concatenate(parts, axis=-1),
        whole,
        rtol=1e-6,
        atol=1e-9 * max(1.0, float(np.abs(whole).max())),
        err_msg=f"{name}: slices solved in chunks differ from the whole solve (batch columns are not independent)",
    )

    if "device" in fields and not backend.gpu_available():
        auto = solver.with_options(device="auto").solve(series)
        np.testing.assert_array_equal(auto.data, volume.data, err_msg=f"{name}: device='auto' differs from 'cpu'")
        assert auto.provenance[-1]["parameters"].get("device_used") == "cpu"


# ------------------------------------------------------------------ quantifiers
def _factors(lines: list[str], g: float = 1.0) -> PhysicsFactors:
    parameters = {
        line: LineParameters(
            line=line,
            sigma_ion=ureg.Quantity(1000.0 * (k + 1), "b"),
            omega=0.1,
            p=0.8,
            epsilon=1.0,
            sigma_ela=ureg.Quantity(1e7 * (k + 1), "b"),
            atomic_weight=ureg.Quantity(100.0 + 50 * k, "g/mol"),
            sources={},
        )
        for k, line in enumerate(lines)
    }
    return PhysicsFactors("check", ureg.Quantity(100.0, "keV"), parameters, [])


def check_quantifier(quantifier_cls: type[Quantifier], **options: Any) -> None:
    """Conformance of a quantifier on a two-element particle with a known composition.

    Checks: ``accepts`` is a known map factor; the elements follow the maps'
    lines; inside the mask the fractions sum to 1 and outside they are 0; the
    particle (a disk) is found; a uniform particle of known composition gives
    that composition; the provenance names the quantifier.
    """
    name = quantifier_cls.name
    assert getattr(quantifier_cls, "accepts", None) in MAP_FACTORS, f"{name}: accepts must be one of {MAP_FACTORS}"
    lines = list(RATIOS)
    factors = _factors(lines)
    g = factors.f_array(lines) if quantifier_cls.accepts == "f_A" else factors.z_array(lines)
    size = 40
    z, x = np.mgrid[:size, :size] - (size - 1) / 2
    disk = (z**2 + x**2 <= 12.0**2).astype(float)
    truth = np.array([0.3, 0.7])
    maps = np.stack([g[k] * truth[k] * disk for k in range(2)])[..., None] * 100.0
    volume = Volume(maps, lines, ureg.Quantity(1.0, "nm"), factor=quantifier_cls.accepts)
    result = quantifier_cls(factors, **options).quantify(volume)
    assert isinstance(result, CompositionMaps), f"{name}: quantify() returned {type(result).__name__}"
    assert result.elements == ["Ag", "Au"], f"{name}: elements {result.elements} do not follow the lines {lines}"
    mask = result.particle_mask
    sums = result.weight_fractions.sum(axis=0)
    np.testing.assert_allclose(sums[mask], 1.0, rtol=1e-9, err_msg=f"{name}: fractions do not sum to 1 inside")
    assert not result.weight_fractions[:, ~mask].any(), f"{name}: fractions outside the mask are not 0"
    inside = disk[..., None] > 0
    overlap = (mask & inside).sum() / max(inside.sum(), 1)
    assert overlap > 0.9 and (mask & ~inside).sum() <= 0.1 * inside.sum(), f"{name}: the mask misses the particle"
    np.testing.assert_allclose(
        result.weight_fractions[:, mask].mean(axis=1), truth, atol=1e-6, err_msg=f"{name}: wrong composition"
    )
    assert result.provenance[-1].get("plugin") == name, f"{name}: the provenance does not name the quantifier"


# ------------------------------------------------------------------ physics and metrics
def check_physics(
    physics_cls: type[PhysicsModel],
    lines: tuple[str, ...] = ("Cu_Ka", "Au_La"),
    beam_energy: str = "200 keV",
    **options: Any,
) -> None:
    """Conformance of a physics model: positive finite f_A (and z_A where given), named sources, provenance."""
    name = physics_cls.name
    base = solver_test_series().experiment.to_dict()
    experiment = Experiment.model_validate({**base, "lines": list(lines), "beam_energy": beam_energy})
    factors = physics_cls(**options).compute(experiment)
    assert factors.lines == list(lines), f"{name}: factors for {factors.lines}, asked for {list(lines)}"
    for line in lines:
        f = factors.f[line].magnitude
        assert np.isfinite(f) and f > 0, f"{name}: f_A of {line} is {f!r}"
        if factors.parameters[line].sigma_ela is not None:
            z = factors.z[line].magnitude
            assert np.isfinite(z) and z > 0, f"{name}: z_A of {line} is {z!r}"
        assert factors.parameters[line].sources, f"{name}: no sources named for {line}"
    assert factors.provenance and factors.provenance[-1].get("plugin") == name
    json.dumps(factors.provenance)


def check_metric(metric_cls: type[Metric], **options: Any) -> None:
    """Conformance of a metric: a float for equal shapes, an error for unequal ones, the perfect
    estimate scores at least as well as a noisy one (as ``higher_is_better`` says)."""
    name = metric_cls.name
    metric = metric_cls(**options)
    rng = np.random.default_rng(0)
    reference = rng.random((16, 16, 2))
    noisy = reference + 0.2 * rng.standard_normal(reference.shape)
    perfect, worse = metric(reference, reference), metric(noisy, reference)
    assert isinstance(perfect, float) and isinstance(worse, float), f"{name}: did not return floats"
    better = perfect >= worse if metric_cls.higher_is_better else perfect <= worse
    assert better, f"{name}: the exact estimate scores {perfect}, a noisy one {worse} (is higher_is_better right?)"
    try:
        metric(reference, reference[:8])
    except ValueError:
        pass
    else:
        raise AssertionError(f"{name}: arrays of different shapes gave no ValueError")
