"""The solver engine: what every reconstruction solver shares, so that a plugin only builds its algorithm.

A solver plugin subclasses :class:`ReconstructionSolver`, declares its options
(a subclass of :class:`SolverOptions` or :class:`IterativeOptions`) and its
capabilities, and writes one method, :meth:`ReconstructionSolver.build`, that
turns a :class:`Problem` into an :class:`~edstomo.algorithms.Algorithm`::

    class Landweber(ReconstructionSolver):
        name = "landweber"
        class Options(IterativeOptions):
            step: float = Field(1.0, gt=0, description="step as a fraction of 1/‖W‖²")
        def build(self, problem):
            return MyLandweber(problem.projector, problem.data, problem.initial, ...)

The engine owns everything else: option validation, channel selection and
checks against the solver's ``requires``, the three array layouts, the initial
estimate, non-negativity as an option, the device (NumPy on the CPU, CuPy on a
GPU), the cached projector, progress and callbacks, the provenance step and
the :class:`~edstomo.data.Volume` it returns (with ``factor`` = ``produces``).

Array layouts
-------------
* :class:`~edstomo.data.TiltSeries`: ``(channels, tilts, positions, slices)``;
* solver layout (what algorithms see): data ``(tilts, positions, channels, slices)``
  and estimates ``(nz, nx, channels, slices)`` — channels and slices are the
  projector's trailing batch axes, so one sparse product handles all of them;
* :class:`~edstomo.data.Volume`: ``(channels, nz, nx, slices)``; callbacks see
  the estimate in this layout (a view).

Batch columns are independent: an algorithm must not combine numbers across
slices (nor across channels unless its operator couples them, as HEBT's does),
so that a series solved in chunks of slices gives the same maps as a whole
(checked by :func:`edstomo.testing.check_solver`).
"""

from __future__ import annotations

import types
import typing
import weakref
from abc import abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import Field, field_validator

from . import backend, provenance, resources
from .algorithms import Algorithm, ProgressBar, ProgressFunction, as_callbacks
from .data import HAADF, TiltSeries, Volume
from .errors import InputError, OptionError
from .interfaces import Solver
from .operators import ParallelBeamProjector, projector_for
from .options import PluginOptions
from .selection import AUTO, SelectionOptions

__all__ = [
    "AUTO",
    "DEVICES",
    "Auto",
    "Equivalent",
    "Iterations",
    "IterativeOptions",
    "Problem",
    "ReconstructionSolver",
    "SolverOptions",
    "stacked_sinograms",
]

#: Devices a solver can run on: NumPy on the CPU, CuPy on a CUDA GPU, or the GPU when there is one.
DEVICES: tuple[str, ...] = ("cpu", "gpu", "auto")

#: Most iterations any solver accepts without being told that a huge count is meant (``--allow-large``).
MAX_ITERATIONS = resources.MAX_ITERATIONS

#: The value of an option that the solver chooses from the data (see :mod:`edstomo.selection`).
Auto = Literal["auto"]

#: Type of an iteration count: an integer >= 0 (more than :data:`MAX_ITERATIONS` only with --allow-large),
#: or ``"auto"``.
Iterations = Annotated[int, Field(ge=0)] | Auto


class SolverOptions(PluginOptions):
    """Options every reconstruction solver has."""

    channels: list[str] | None = Field(None, description="channels to reconstruct (default: every EDS line)")
    projector: Literal["strip", "joseph"] = Field("strip", description="projection model of W")
    nonnegativity: bool = Field(True, description="keep every voxel >= 0")
    dtype: Literal["float32", "float64"] = Field("float32", description="arithmetic type")
    device: Literal["cpu", "gpu", "auto"] = Field(
        "cpu", description="'cpu' (NumPy), 'gpu' (CuPy), or 'auto' (the GPU when there is one)"
    )

    @field_validator("channels")
    @classmethod
    def _distinct(cls, channels: list[str] | None) -> list[str] | None:
        if channels is not None and (not channels or len(set(channels)) != len(channels)):
            raise ValueError(f"channels: {channels} must be a non-empty list of distinct channel names")
        return channels


class IterativeOptions(SolverOptions):
    """Options of iterative solvers: the iteration count (a number or ``"auto"``) and how automatic
    options are chosen (:class:`~edstomo.selection.SelectionOptions`)."""

    iterations: Iterations = Field(
        100, description=f"number of iterations n (above {MAX_ITERATIONS}: --allow-large), or 'auto' (from the data)"
    )
    selection: SelectionOptions = Field(
        default_factory=SelectionOptions,
        description="how options set to 'auto' are chosen: {splits, fraction, seed, max_iterations, slices, tolerance}",
    )

    @field_validator("iterations")
    @classmethod
    def _not_absurd(cls, value: int | str) -> int | str:
        if isinstance(value, int):
            resources.check_iterations(value)  # lifted by --allow-large / EDSTOMO_ALLOW_LARGE
        return value


def stacked_sinograms(data: TiltSeries, channels: list[str], xp: Any, dtype: str) -> Any:
    """The sinograms of ``channels`` as one C-ordered array ``(tilts, positions, channels, slices)``."""
    sinograms = xp.zeros((data.n_tilts, data.n_positions, len(channels), data.n_slices), dtype=getattr(xp, dtype))
    for k, channel in enumerate(channels):
        sinograms[:, :, k, :] = xp.asarray(data.channel(channel), dtype=getattr(xp, dtype))
    return sinograms


@dataclass(frozen=True)
class Equivalent:
    """Another solver whose maps of the same data, times one factor per channel, are a solver's maps
    (what :meth:`ReconstructionSolver.equivalent` returns).

    Attributes
    ----------
    solver : ReconstructionSolver
        The other solver, with the options that make it equivalent.
    scales : dict
        Factor per channel: this solver's map of channel A is ``scales[A]`` × the other's (dimensionless
        or in the ratio of the two solvers' map units).
    reason : str
        Why the two are equivalent (recorded in the provenance of reused maps).
    record : dict
        The provenance this solver's own solve would add (:meth:`ReconstructionSolver.record`).
    """

    solver: ReconstructionSolver
    scales: Mapping[str, float]
    reason: str
    record: Mapping[str, Any]


@dataclass
class Problem:
    """Everything an algorithm needs, in the solver layout, on the solver's device.

    Attributes
    ----------
    series : TiltSeries
        The tilt series being solved.
    channels : list of str
        The channels reconstructed, in order.
    projector : ParallelBeamProjector
        W for the series' angles and slice shape (cached; do not modify).
    xp : module
        Array namespace of the device.
    dtype : str
        ``"float32"`` or ``"float64"``.
    data : array, shape ``(tilts, positions, channels, slices)``
        The sinograms of ``channels``.
    initial : array, shape ``(nz, nx, channels, slices)``
        The starting estimate (C-contiguous; algorithms update it in place).
    nonnegative : bool
        Whether the maps must stay >= 0.
    """

    series: TiltSeries
    channels: list[str]
    projector: ParallelBeamProjector
    xp: Any
    dtype: str
    data: Any
    initial: Any
    nonnegative: bool
    kept: Callable[[Any], Any] | None = None

    def project(self, x: Any) -> Any:
        """``W x``: the projection the running algorithm kept of ``x`` when it has one (the same values), else
        computed (``projector.forward``)."""
        kept = self.kept(x) if self.kept is not None else None
        return kept if kept is not None else self.projector.forward(x)

    def sinograms(self, channels: list[str]) -> Any:
        """Sinograms of any channels of the series (e.g. the HAADF), shape ``(tilts, positions, k, slices)``."""
        return stacked_sinograms(self.series, channels, self.xp, self.dtype)

    @property
    def slice_shape(self) -> tuple[int, int]:
        """``(nz, nx)`` of one reconstructed slice."""
        return self.projector.slice_shape


class ReconstructionSolver(Solver):
    """Base of the solvers on the engine: a plugin writes :meth:`build`; :meth:`solve` does the rest.

    Optional hooks: :meth:`default_channels`, :meth:`check`, :meth:`describe`,
    :meth:`record` and :meth:`finish` (a last touch to the estimate).

    Automatic options: ``auto_options`` maps each option that may be given as ``"auto"`` to its
    candidate values (:meth:`candidates`); the empty tuple of ``"iterations"``
    means "chosen along the iterations of one run".  An option set to
    ``"auto"`` is chosen once on the whole series by :meth:`prepare`
    (:func:`edstomo.selection.choose`: Poisson thinning, held-out deviance),
    which needs the solver to predict its data from its maps (:meth:`predict`;
    the default, ``W X``, holds for maps in data units per pixel length).
    Hooks for data-dependent options: :meth:`batch` (several series solved as
    batch columns of one solve), :meth:`thinned` and :meth:`whole` (options
    that scale with the counts).
    """

    Options = SolverOptions
    auto_options: ClassVar[Mapping[str, tuple[Any, ...]]] = {"iterations": ()}

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.auto_choice: Any = None  # the SelectionResult that chose the automatic options, once prepared
        self.batch_fits: list[dict[str, Any]] | None = None  # per-column fitted options of a solver made by batch()
        for name in self.requested_auto():
            if name not in self.auto_options:
                automatic = list(self.auto_options) if "iterations" in type(self.options).model_fields else []
                raise OptionError(
                    self.label(),
                    name,
                    AUTO,
                    f"this solver cannot choose {name!r} from the data; options it can choose: {automatic or 'none'}",
                )
            if self.produces != "f_A" and type(self).predict is ReconstructionSolver.predict:
                raise OptionError(
                    self.label(),
                    name,
                    AUTO,
                    f"automatic options need the solver to predict its data from {self.produces} maps "
                    "(ReconstructionSolver.predict), which this solver does not",
                )

    # ------------------------------------------------------- automatic options
    def requested_auto(self) -> list[str]:
        """The options given as ``"auto"`` (still to be chosen from the data); only options whose type
        admits :data:`Auto` count (``device="auto"`` is a device, not a choice from the data)."""
        fields = type(self.options).model_fields
        return [
            name
            for name, value in self.options
            if isinstance(value, str) and value == AUTO and _admits_auto(fields[name].annotation)
        ]

    def unfitted(self) -> list[str]:
        return [*super().unfitted(), *self.requested_auto()]

    def prepare(self, data: TiltSeries, *, known: Sequence[Any] = ()) -> ReconstructionSolver:
        """This solver with every ``"auto"`` option chosen from ``data`` (:func:`edstomo.selection.choose`).

        ``known``: :class:`~edstomo.selection.SelectionResult` s of other solvers on the same
        data; a candidate equivalent to a run scored there (:meth:`equivalent`) is not run again.
        """
        if not self.requested_auto():
            return self
        from .selection import choose

        return choose(self, data, known=known)

    def candidates(self, name: str, data: TiltSeries) -> tuple[Any, ...]:
        """The values tried for an automatic option (default: ``auto_options[name]``); may depend on the data."""
        return tuple(self.auto_options[name])

    def channels_for(self, data: TiltSeries) -> list[str]:
        """The channels this solver reconstructs from ``data`` (its ``channels`` option, else the default)."""
        return list(self.options.channels) if self.options.channels is not None else self.default_channels(data)

    def predict(self, problem: Problem, x: Any) -> Any:
        """The mean data of the reconstructed channels predicted by the estimate ``x``, in the units of
        ``problem.data``, solver layout ``(tilts, positions, channels, slices)``.

        Default ``W X``: right for maps in data units per pixel length (``f_A`` maps and
        HAADF reconstructions).  A solver whose maps are on another scale overrides it.
        """
        if self.produces != "f_A" and HAADF not in problem.channels:
            raise NotImplementedError(f"{self.label()} does not predict its data from {self.produces} maps")
        return problem.project(x)

    def simulate(self, problem: Problem, x: Any) -> dict[str, Any]:
        """The mean data of every channel the solver uses, predicted by the estimate ``x``: ``{channel:
        array (tilts, positions, slices)}`` in the units of the series.  Default: the reconstructed
        channels (:meth:`predict`); a solver that also uses other channels (a HAADF data term) adds them."""
        predicted = self.predict(problem, x)
        return {channel: predicted[:, :, k, :] for k, channel in enumerate(problem.channels)}

    def batch(self, series: Sequence[TiltSeries]) -> tuple[ReconstructionSolver, TiltSeries, np.ndarray]:
        """Several series of one shape as batch columns (slices) of one solve.

        Returns the solver to use, the series stacked along the slices, and the
        scale applied to each reconstructed channel of each series, shape
        ``(channels, len(series))`` (predictions of series ``b`` in its own units
        are ``predict / scale[:, b]``).  The default stacks the series as they
        are; it raises InputError when options would be fitted per series
        (``unfitted`` options of ``fits_from_data``), which a solver with such
        options overrides (e.g. by fitting per series and rescaling the data).
        """
        pending = [name for name in Solver.unfitted(self)]
        if pending:
            raise InputError(
                f"series: {self.label()} fits {pending} from each series; it cannot solve several as one batch"
            )
        channels = self.channels_for(series[0])
        return self, _stack(series), np.ones((len(channels), len(series)))

    def thinned(self, fraction: float) -> ReconstructionSolver:
        """This solver for data that hold ``fraction`` of the counts (options on the counts' scale adjusted).

        Default: itself (options that do not depend on the counts' scale).
        """
        return self

    def whole(self, name: str, value: Any, fraction: float) -> Any:
        """The value of an automatic option for the whole data, given ``value`` chosen on a ``fraction`` of
        the counts.  Default: the same value (iteration counts, dimensionless weights, the absolute TV
        weight of ``KL(y, Wx) + λ TV(x)`` with x in counts, whose objective and minimiser scale with the
        counts at the same λ, and a multiplier of a rule that follows the counts); a weight on a data
        term normalised by the counts returns ``value / fraction``.
        """
        return value

    # -------------------------------------------------------- equivalent solvers
    def equivalent(self) -> Equivalent | None:
        """Another solver whose maps, scaled per channel, are this solver's maps of the same data, when these
        options make this solver that one (e.g. HEBT at α = 0: SIRT of ``r_A I_A``); default None.

        Used to reuse work, never to change results: :meth:`reuse` makes this solver's maps from the
        other's, and :func:`edstomo.selection.select` takes a candidate's scores from the other's run.
        The two must agree in exact arithmetic (in floating point, within its rounding).
        """
        return None

    def reuse_step(self, data: TiltSeries, step: Mapping[str, Any]) -> tuple[np.ndarray, dict[str, Any]] | None:
        """How to make this solver's maps of ``data`` from the maps another solve of ``data`` recorded as
        provenance ``step``: ``(scales, record)``, the factor per channel and this solver's own
        ``reconstruct`` step for the result; None when :meth:`equivalent` does not name that solve (the
        same solver with the same options, channels and data type) or a callback stopped it early.
        """
        equivalent = self.equivalent()
        recorded = step.get("parameters", {})
        if (
            equivalent is None
            or step.get("action") != "reconstruct"
            or step.get("plugin") != equivalent.solver.name
            or recorded.get("stop_reason") not in _COMPLETED
        ):
            return None
        channels = self.channels_for(data)
        wanted = {k: v for k, v in equivalent.solver.parameters().items() if k not in ("selection", "channels")}
        if recorded.get("channels") != channels or any(recorded.get(k, ...) != v for k, v in wanted.items()):
            return None
        missing = [c for c in channels if c not in equivalent.scales]
        if missing:
            raise InputError(f"{self.label()}: its equivalent solver gives no scale for the channels {missing}")
        scales = {c: float(equivalent.scales[c]) for c in channels}
        record = self._step(
            channels,
            recorded["device_used"],
            recorded["iterations_run"],
            recorded["stop_reason"],
            {
                **equivalent.record,
                "equivalent": {"solver": equivalent.solver.name, "scales": scales, "reason": equivalent.reason},
            },
        )
        return np.array([scales[c] for c in channels]), record

    def reuse(self, data: TiltSeries, solved: Volume) -> Volume | None:
        """This solver's maps of ``data`` made from ``solved``, the maps of ``data`` by an equivalent solve
        (:meth:`equivalent`, :meth:`reuse_step`), without solving; None when they are not equivalent.

        ``solved`` must come straight from that solve of ``data``: its provenance must be the data's and
        the solve's step; its values are scaled per channel in their own data type.
        """
        steps = solved.provenance
        if not steps or provenance.canonical(steps[:-1]) != provenance.canonical(data.provenance):
            return None
        plan = self.reuse_step(data, steps[-1])
        if plan is None or solved.channels != self.channels_for(data):
            return None
        scales, record = plan
        values = solved.data * scales.astype(solved.data.dtype)[:, None, None, None]
        return self._as_volume(values, data, solved.channels, record)

    # ------------------------------------------------------------ contract
    @abstractmethod
    def build(self, problem: Problem) -> Algorithm:
        """The algorithm for this problem; its estimate ``x`` must be ``problem.initial`` (updated in place)
        or another array of the same shape and layout."""

    def default_channels(self, data: TiltSeries) -> list[str]:
        """The channels reconstructed when the user names none: every EDS line."""
        if not data.lines:
            raise InputError(
                f"channels: the tilt series has no EDS line (channels {data.channels}); "
                f"give channels=[{HAADF!r}] to reconstruct the HAADF signal"
            )
        return data.lines

    def work_arrays(self) -> tuple[float, float]:
        """Sinogram- and volume-sized work arrays for the memory check (default: SIRT's 3 and 0).

        See :func:`edstomo.resources.solve_bytes`; a solver that holds more overrides this.
        """
        return 3.0, 0.0

    def check(self, data: TiltSeries, channels: list[str]) -> None:
        """Raise InputError when ``channels`` of ``data`` cannot be solved (default: the ``requires`` check)."""
        if "haadf" in self.requires and not data.has_haadf:
            raise InputError(
                f"data: {self.label()} needs a {HAADF!r} channel; the tilt series has channels {data.channels}"
            )
        if "haadf" in self.requires and HAADF in channels:
            raise InputError(f"channels: {channels} must be EDS lines only; {HAADF!r} is a data term of {self.label()}")

    def describe(self, channels: list[str]) -> tuple[str, str]:
        """``(quantity, unit)`` of the reconstructed maps."""
        if HAADF in channels:
            return (
                ("HAADF reconstruction per pixel length", "electrons/pixel")
                if channels == [HAADF]
                else (
                    "per-channel reconstruction per pixel length",
                    "data units/pixel",
                )
            )
        if self.produces == "z_A":
            return "X^b_A = D_H N_A z_A C_A rho (eq. 17) per pixel length, HAADF scale", "electrons/pixel"
        return "X_A = n f_A C_A rho (eq. 11) per pixel length", "counts/pixel"

    def record(self) -> dict[str, Any]:
        """Extra provenance known only after :meth:`build` (e.g. fitted values); default none."""
        return {}

    def finish(self, algorithm: Algorithm, problem: Problem) -> None:
        """A last touch to ``algorithm.x`` after the run (default: nothing)."""

    # ------------------------------------------------------------------ run
    def solve(
        self,
        data: TiltSeries,
        *,
        initial: Any = None,
        callbacks: Any = None,
        progress: Any = None,
    ) -> Volume:
        """Reconstruct the selected channels of ``data``.

        Parameters
        ----------
        data : TiltSeries
            Sinograms (channels, tilts, positions, slices).
        initial : None, float, ndarray or Volume, optional
            Starting estimate: zeros (None), a constant, or maps of shape
            ``(channels, nz, nx, slices)`` (a Volume must have the same channels,
            e.g. a checkpoint).
        callbacks : Callback, callable or list, optional
            See :meth:`edstomo.algorithms.Algorithm.run`; the state's
            ``estimate`` is in the Volume layout and ``state.volume()`` gives a Volume.
        progress : bool, str or callable, optional
            ``True`` or a label: a progress bar (:class:`~edstomo.algorithms.ProgressBar`);
            a callable: ``progress(done, planned)`` after every iteration.

        Returns
        -------
        Volume
            Maps of shape ``(channels, positions, positions, slices)`` with a
            provenance step naming the solver, its options, the iterations run
            and why the run stopped.
        """
        if not isinstance(data, TiltSeries):
            raise InputError(f"data: expected a TiltSeries, got {type(data).__name__}")
        if self.requested_auto():  # chosen on this series first (solve in chunks: prepare on the whole series)
            return self.prepare(data).solve(data, initial=initial, callbacks=callbacks, progress=progress)
        channels = self.channels_for(data)
        if len(set(channels)) != len(channels) or not channels:
            raise InputError(f"channels: {channels} must be a non-empty list of distinct channel names")
        missing = [c for c in channels if c not in data.channels]
        if missing:
            raise InputError(f"channels: {missing} not in the tilt series; its channels are {data.channels}")
        self.check(data, channels)
        if data.n_positions < 1 or data.n_slices < 1:
            raise InputError(f"data: shape {data.shape} has no positions or no slices")

        sinograms, volumes = self.work_arrays()
        resources.check_memory(
            resources.solve_bytes(
                len(channels), data.n_tilts, data.n_positions, data.n_slices,
                itemsize=np.dtype(self.options.dtype).itemsize, extra_arrays=sinograms, extra_volumes=volumes,
            ),
            f"solve: {self.name} of {len(channels)} channels, {data.n_tilts} tilts, {data.n_positions} positions, "
            f"{data.n_slices} slices",
        )  # fmt: skip
        device = self._device()
        xp = backend.namespace_for(device)
        shape = (data.n_positions, data.n_positions)
        projector = projector_for(data.angles.m_as("rad"), shape, self.options.projector, self.options.dtype)
        problem = Problem(
            series=data,
            channels=channels,
            projector=projector,
            xp=xp,
            dtype=self.options.dtype,
            data=stacked_sinograms(data, channels, xp, self.options.dtype),
            initial=self._initial(initial, channels, shape, data.n_slices, xp),
            nonnegative=self.options.nonnegativity,
        )
        algorithm = self.build(problem)
        algorithm.labels = list(channels)
        algorithm.view = lambda x: xp.permute_dims(x, (2, 0, 1, 3))
        owner = weakref.ref(algorithm)  # no reference cycle: the arrays go when the solve returns, not at a GC pass
        problem.kept = lambda x: getattr(owner(), "projection", lambda _: None)(x)
        algorithm.to_volume = lambda x: self._volume(x, data, channels, owner(), device)
        algorithm.predict = lambda x: self.predict(problem, x)
        algorithm.simulate = lambda x: self.simulate(problem, x)
        hooks = as_callbacks(callbacks)
        if progress is True or isinstance(progress, str):
            hooks.append(ProgressBar(progress if isinstance(progress, str) else self.name))
        elif callable(progress):
            hooks.append(ProgressFunction(progress))
        elif progress not in (None, False):
            raise InputError(f"progress: expected True, a label, False or a callable (done, planned), got {progress!r}")
        algorithm.run(callbacks=hooks)
        self.finish(algorithm, problem)
        return self._volume(algorithm.x, data, channels, algorithm, device)

    def _device(self) -> str:
        device = self.options.device
        if device == "auto":
            return "gpu" if backend.gpu_available() else "cpu"
        if device == "gpu" and not backend.gpu_available():
            raise InputError(
                f"device: {self.label()} asked for 'gpu', but CuPy with a CUDA GPU is not available; "
                "use device='cpu' or 'auto'"
            )
        return device

    def _volume(self, x: Any, data: TiltSeries, channels: list[str], algorithm: Algorithm, device: str) -> Volume:
        record = self._step(channels, device, algorithm.iteration, algorithm.stop_reason, self.record())
        return self._as_volume(np.moveaxis(backend.to_numpy(x), 2, 0), data, channels, record)

    def _step(
        self, channels: list[str], device: str, iterations: int, stop_reason: Any, extra: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The ``reconstruct`` provenance step of maps of ``channels`` made in ``iterations`` on ``device``."""
        parameters = {
            **self.parameters(),
            "channels": list(channels),
            "device_used": device,
            "iterations_run": iterations,
            "stop_reason": stop_reason,
            **extra,
            **({"selection": self.auto_choice.record()} if self.auto_choice is not None else {}),
        }
        return provenance.step("reconstruct", self.name, **parameters)

    def _as_volume(self, values: np.ndarray, data: TiltSeries, channels: list[str], record: dict[str, Any]) -> Volume:
        """The Volume of maps ``values`` (channels, nz, nx, slices) of ``data`` with the solve's step ``record``."""
        quantity, unit = self.describe(channels)
        return Volume(
            data=np.ascontiguousarray(values),
            channels=list(channels),
            pixel_size=data.pixel_size,
            quantity=quantity,
            unit=unit,
            experiment=data.experiment,
            provenance=[*data.provenance, record],
            factor=None if HAADF in channels else self.produces,
        )

    def _initial(self, initial: Any, channels: list[str], shape: tuple[int, int], slices: int, xp: Any) -> Any:
        """The starting estimate, shape (nz, nx, channels, slices), C-ordered, in the solver's dtype."""
        full = (*shape, len(channels), slices)
        dtype = getattr(xp, self.options.dtype)
        if initial is None:
            return xp.zeros(full, dtype=dtype)
        if isinstance(initial, (int, float)) and not isinstance(initial, bool):
            if not np.isfinite(initial):
                raise InputError(f"initial: {initial!r} must be finite")
            return xp.full(full, initial, dtype=dtype)
        if isinstance(initial, Volume):
            if initial.channels != list(channels):
                raise InputError(
                    f"initial: volume channels {initial.channels} differ from the reconstructed {channels}"
                )
            maps = initial.data
        elif hasattr(initial, "shape"):
            maps = initial
        else:
            raise InputError(f"initial: expected None, a number, an array or a Volume, got {type(initial).__name__}")
        expected = (len(channels), *shape, slices)
        if tuple(maps.shape) != expected:
            raise InputError(f"initial: shape {tuple(maps.shape)} differs from (channels, nz, nx, slices) = {expected}")
        maps = xp.asarray(maps, dtype=dtype)
        if not bool(xp.all(xp.isfinite(maps))):
            raise InputError("initial: contains NaN or infinite values")
        estimate = xp.zeros(full, dtype=dtype)
        estimate[...] = xp.permute_dims(maps, (1, 2, 0, 3))
        return estimate


#: Stop reasons of a solve that ran as its options say (not stopped early by a callback).
_COMPLETED = ("planned iterations done", "converged")


def _admits_auto(annotation: Any) -> bool:
    """Whether an option's type is a union with :data:`Auto` as one member (``int | Literal["auto"]``)."""
    return typing.get_origin(annotation) in (typing.Union, types.UnionType) and Auto in typing.get_args(annotation)


def _stack(series: Sequence[TiltSeries]) -> TiltSeries:
    """Series of one shape and channels concatenated along the slices (batch columns)."""
    first = series[0]
    for other in series[1:]:
        if other.channels != first.channels or other.shape[:3] != first.shape[:3]:
            raise InputError(
                f"series: {other.channels} {other.shape} cannot be stacked with {first.channels} {first.shape}"
            )
    return first.replace(data=np.concatenate([s.data for s in series], axis=-1))
