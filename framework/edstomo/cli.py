"""The ``edstomo`` command line.

Each sub-command is a pair of functions: ``_add_<name>(subparsers)`` declares
its arguments, ``_run_<name>(args)`` does the work and returns an exit code.
A command that writes declares ``--overwrite``/``--allow-large``
(:func:`edstomo.safety.add_arguments`) and checks its output first
(:func:`edstomo.safety.prepare`). Exit codes (:mod:`edstomo.safety`): 0 ok,
1 user error (one line, no traceback), 2 usage, 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from . import safety
from .experiment import Experiment, yuan2020_phantom_experiment
from .registry import plugins


def _load_experiment(path: str | None) -> Experiment:
    return yuan2020_phantom_experiment() if path is None else Experiment.load(path)


# ----- simulate ----------------------------------------------------------------
def _add_simulate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "simulate",
        help="simulate HAADF + EDS sinograms of a phantom",
        description="Simulate a tilt series of a phantom and save it to HDF5. Without EXPERIMENT, "
        "the phantom experiment of Yuan et al. 2020 is used.",
    )
    p.add_argument("experiment", nargs="?", help="experiment definition (.yaml/.yml or .json)")
    p.add_argument("--out", required=True, help="output HDF5 file")
    p.add_argument("--physics", default="table", help="physics plugin (default: table)")
    p.add_argument("--phantom", default="core-shell", help="phantom plugin (default: core-shell)")
    p.add_argument("--forward", default="thin-film", help="forward-model plugin (default: thin-film)")
    p.add_argument("--seed", type=safety.non_negative_int, default=0, help="seed of the Poisson noise (default: 0)")
    p.add_argument("--no-noise", action="store_true", help="write the noise-free mean signal")
    safety.add_arguments(p, output="file")
    p.set_defaults(func=_run_simulate)


def _run_simulate(args: argparse.Namespace) -> int:
    from .resources import check_simulation

    safety.prepare(args, output="file", inputs=[args.experiment])
    experiment = _load_experiment(args.experiment)
    check_simulation(experiment)
    factors = plugins.physics(args.physics)().compute(experiment)
    truth = plugins.phantom(args.phantom)().generate(experiment)
    model = plugins.forward(args.forward)(experiment, factors)
    series = model.simulate(truth, noise=None if args.no_noise else "poisson", seed=args.seed)
    path = series.save(args.out)
    print(f"wrote {path}: channels {series.channels}, shape {series.shape} (channels, tilts, positions, slices)")
    return 0


# ----- plugins -----------------------------------------------------------------
def _add_plugins(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plugins", help="list the registered plugins")
    p.add_argument("--kind", help="only this kind")
    p.set_defaults(func=_run_plugins)


def _run_plugins(args: argparse.Namespace) -> int:
    from .registry import KINDS

    safety.check_choice(args.kind, KINDS, "--kind", "a plugin kind")
    infos = plugins.available(args.kind)
    width_kind = max((len(i.kind) for i in infos), default=4)
    width_name = max((len(i.name) for i in infos), default=4)
    for info in infos:
        print(f"{info.kind:<{width_kind}}  {info.name:<{width_name}}  {info.description}")
    return 0


# ----- physics -----------------------------------------------------------------
def _add_physics(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "physics",
        help="compute the quantification factors f_A and z_A of X-ray lines",
        description="Print the physical parameters of each line (as in Table 2 of Yuan et al. 2020) and the "
        "factors f_A = σ_ion ω p ε / M and z_A = σ_ela / M (b·mol/g). Only the beam energy, the lines, the "
        "HAADF angles and the detector efficiency matter here: the tilts, scan and doses of the experiment "
        "built internally are placeholders that do not affect the factors.",
    )
    p.add_argument("lines", nargs="+", metavar="LINE", help="X-ray lines named as HyperSpy does, e.g. Co_Ka Au_Ma")
    p.add_argument("--beam-energy", required=True, help="beam energy with its unit, e.g. '80 keV'")
    p.add_argument("--model", default="mcxray", help="physics plugin (default: mcxray)")
    p.add_argument(
        "--efficiency",
        default="1",
        help="detector efficiency: a number in (0, 1] for every line (default 1), or, with the mcxray model, "
        "a layered-detector preset (windowless-sdd, si3n4-window-sdd)",
    )
    p.add_argument("--haadf-inner", default="94 mrad", help="HAADF inner angle (default: '94 mrad')")
    p.add_argument("--haadf-outer", default="611 mrad", help="HAADF outer angle (default: '611 mrad')")
    p.add_argument("--yields", help="mcxray: source of ω and p, 'eadl' (default) or 'xraylib'")
    p.add_argument(
        "--elastic",
        help="mcxray: elastic model, 'browning-mcxray' (default), 'browning-published', 'wentzel-annular' or 'none'",
    )
    p.add_argument("--cascade", help="mcxray: 'none' (default), 'coster-kronig' or 'full'")
    p.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="LINE.KEY=VALUE",
        help="mcxray: replace one value, e.g. Au_Ma.p=0.999 or 'Co_Ka.sigma_ion=420 b' (repeatable)",
    )
    p.add_argument("--format", choices=("table", "json"), default="table", help="output format (default: table)")
    p.set_defaults(func=_run_physics)


def _physics_options(args: argparse.Namespace) -> dict[str, object]:
    """Keyword options of the physics plugin from the command line (mcxray-style options)."""
    options: dict[str, object] = {
        key: getattr(args, key) for key in ("yields", "elastic", "cascade") if getattr(args, key) is not None
    }
    overrides: dict[str, dict[str, object]] = {}
    for item in args.override:
        target, sep, value = item.partition("=")
        line, dot, key = target.partition(".")
        if not (sep and dot and line and key and value):
            raise ValueError(f"--override: {item!r} is not of the form LINE.KEY=VALUE, e.g. Au_Ma.p=0.999")
        try:
            number: object = float(value)
        except ValueError:
            number = value
        overrides.setdefault(line, {})[key] = number
    if overrides:
        options["overrides"] = overrides
    return options


def _run_physics(args: argparse.Namespace) -> int:
    import inspect

    from .experiment import EDSDetector, HAADFDetector, Scan
    from .lines import parse_line
    from .units import as_beam_energy

    energy, _ = as_beam_energy(args.beam_energy, "--beam-energy")
    if not energy.magnitude > 0:
        raise ValueError(f"--beam-energy: {args.beam_energy!r} must be a positive energy (e.g. '80 keV')")
    for line in args.lines:
        parse_line(line)
    options = _physics_options(args)
    safety.check_used(options.get("overrides", {}), args.lines, "--override", "lines")  # type: ignore[arg-type]
    try:
        constant = float(args.efficiency)
    except ValueError:
        constant = None
        options["efficiency"] = args.efficiency
    if constant is not None and not 0 < constant <= 1:
        raise ValueError(f"--efficiency: {args.efficiency!r} must lie in (0, 1] or name a detector preset")
    model = plugins.physics(args.model)
    accepted = inspect.signature(model.__init__).parameters
    for key in options:
        if key not in accepted:
            flag = {"overrides": "--override"}.get(key, f"--{key}")
            raise ValueError(f"{flag}: the {args.model!r} physics model has no such option")
    experiment = Experiment(
        name="physics",
        beam_energy=energy,
        lines=args.lines,
        tilts=["0 deg"],
        scan=Scan(positions=1, pixel_size="1 nm"),
        haadf=HAADFDetector(electrons_per_pixel="1 e", inner_angle=args.haadf_inner, outer_angle=args.haadf_outer),
        eds=EDSDetector(electrons_per_pixel="1 e", solid_angle="1 sr", efficiency=constant or 1.0),
    )
    factors = model(**options).compute(experiment)
    print(factors.to_json() if args.format == "json" else factors.table())
    return 0


# ----- study -------------------------------------------------------------------
def _add_study(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "study",
        help="run a validation study (e.g. yuan2020-phantom) and write its tables, summary and figures",
        description="Run a study plugin. yuan2020-phantom simulates the Ag-Au phantom of Yuan et al. 2020 at the "
        "paper's doses and at a low EDS dose, sweeps EDS-only SIRT (n = 1..500) and HEBT (alpha x n), and writes "
        "metrics.csv, summary.json, settings.json and PNG figures to --out. Options left out keep the study's "
        "defaults.",
    )
    p.add_argument("name", help="study plugin, e.g. yuan2020-phantom (see 'edstomo plugins --kind study')")
    p.add_argument("--out", required=True, help="output folder (created if needed)")
    p.add_argument("--solid-angle", help="EDS detector solid angle with its unit (default: '0.7 sr')")
    p.add_argument("--low-dose-divisor", type=float, help="EDS dose divisor of the 'low' level (default: 30)")
    p.add_argument("--levels", help="comma-separated dose levels to run (default: paper,low)")
    p.add_argument("--max-iterations", type=int, help="largest number of SIRT iterations (default: 500)")
    p.add_argument("--seed", type=safety.non_negative_int, help="seed of the Poisson noise (default: 0)")
    p.add_argument("--no-figures", action="store_true", help="do not draw the PNG figures (no matplotlib needed)")
    p.add_argument("--quick", action="store_true", help="a reduced sweep (fewer alpha values and iterations)")
    safety.add_arguments(p, output="folder")
    p.set_defaults(func=_run_study)


def _run_study(args: argparse.Namespace) -> int:
    import inspect
    import time

    from .study import ProgressPrinter

    safety.prepare(args, output="folder")
    study = plugins.study(args.name)
    options: dict[str, object] = {
        "solid_angle": args.solid_angle,
        "low_dose_divisor": args.low_dose_divisor,
        "levels": None if args.levels is None else [v.strip() for v in args.levels.split(",") if v.strip()],
        "max_iterations": args.max_iterations,
        "seed": args.seed,
        "figures": False if args.no_figures else None,
        "quick": True if args.quick else None,
    }
    options = {key: value for key, value in options.items() if value is not None}
    accepted = inspect.signature(study.__init__).parameters
    for key in options:
        if key not in accepted:
            flag = {"figures": "--no-figures"}.get(key, "--" + key.replace("_", "-"))
            raise ValueError(f"{flag}: the {args.name!r} study has no such option")
    start = time.perf_counter()
    summary = study(**options).run(args.out, progress=ProgressPrinter())
    print(f"{args.name}: finished in {time.perf_counter() - start:.1f} s; results in {args.out}")
    for group, values in summary.items():
        print(f"[{group}]")
        for key, value in values.items() if isinstance(values, dict) else [("value", values)]:
            shown = f"{value:.4f}" if isinstance(value, float) else str(value)
            print(f"  {key:<20} {shown}")
    return 0


# ----- solve -------------------------------------------------------------------
def _add_solve(sub: argparse._SubParsersAction) -> None:
    from .distributed import add_distributed_arguments

    p = sub.add_parser(
        "solve",
        help="reconstruct a saved tilt series (HDF5) slice chunk by slice chunk on a Dask cluster",
        description="Reconstruct the tilt series in an edstomo HDF5 file (from 'edstomo simulate', or the "
        "tilt_series_aligned.h5 of 'edstomo reconstruct') with one solver. The slices are solved in chunks "
        "of --chunk-slices on a Dask cluster (a local one unless --scheduler names a running scheduler); each "
        "task reads its slices from the file and writes its maps to disk, so the volume never has to fit in "
        "memory. The input and output folders must be visible to every worker.",
    )
    p.add_argument("series", help="edstomo tilt-series HDF5 file")
    p.add_argument("--out", required=True, help="output volume HDF5 file")
    p.add_argument("--solver", default="sirt", help="solver plugin, e.g. sirt or hebt-sirt (default: sirt)")
    p.add_argument("--iterations", type=int, default=100, help="iterations (default: 100)")
    p.add_argument("--relaxation", type=float, default=1.0, help="relaxation in (0, 2) (default: 1)")
    p.add_argument("--channels", help="comma-separated channels to reconstruct (default: the solver's)")
    p.add_argument("--alpha", type=float, help="hebt-sirt: weight of the HAADF term in [0, 1) (default: 0.8)")
    p.add_argument(
        "--ratios",
        help="hebt-sirt: response ratios as LINE=VALUE,… (default: fitted once to the whole tilt series)",
    )
    add_distributed_arguments(p)
    p.add_argument("--no-progress", action="store_true", help="do not show progress")
    safety.add_arguments(p, output="file")
    p.set_defaults(func=_run_solve)


def _solver_options(args: argparse.Namespace, model: type) -> dict[str, object]:
    """Keyword options of the solver from the command line; hebt-sirt's ratios fitted when not given."""
    import inspect

    options: dict[str, object] = {"iterations": args.iterations, "relaxation": args.relaxation}
    if args.channels:
        options["channels"] = [c.strip() for c in args.channels.split(",") if c.strip()]
    if args.alpha is not None:
        options["alpha"] = args.alpha
    accepted = inspect.signature(model.__init__).parameters
    for key in options:
        if key not in accepted:
            raise ValueError(f"--{key}: the {args.solver!r} solver has no such option")
    model(**options)  # every option checked before anything is computed
    if "ratios" in accepted:
        if args.ratios:
            ratios: dict[str, float] = {}
            for item in args.ratios.split(","):
                line, sep, value = item.partition("=")
                try:
                    ratios[line.strip()] = float(value)
                except ValueError:
                    sep = ""
                if not (sep and line.strip()):
                    raise ValueError(f"--ratios: {item!r} is not of the form LINE=VALUE, e.g. Ag_La=805")
            from .io import read_channels

            used = options.get("channels") or [c for c in read_channels(args.series) if c != "HAADF"]
            safety.check_used(ratios, used, "--ratios", "reconstructed lines")  # type: ignore[arg-type]
            options["ratios"] = ratios
        else:
            from .data import TiltSeries
            from .preprocessing import response_ratios

            series = TiltSeries.load(args.series)
            fit = response_ratios(series, options.get("channels"))  # type: ignore[arg-type]
            print(f"response ratios fitted to the whole series: {fit.ratios} (R² = {fit.r_squared:.3f})")
            options["ratios"] = fit.ratios
    return options


def _run_solve(args: argparse.Namespace) -> int:
    from .distributed import solve_file
    from .resources import check_solve_file

    safety.prepare(args, output="file", inputs=[args.series])
    check_solve_file(args.series, args.iterations, args.chunk_slices, args.workers)
    model = plugins.solver(args.solver)
    solver = model(**_solver_options(args, model))
    if args.no_progress:
        progress: object = None
    else:
        try:
            import tqdm  # noqa: F401  (a bar when tqdm is installed)

            progress = True
        except ImportError:
            from functools import partial

            from .study import ProgressPrinter

            progress = partial(ProgressPrinter(), "solve")
    out = solve_file(
        solver,
        args.series,
        args.out,
        chunk_slices=args.chunk_slices,
        scheduler=args.scheduler,
        workers=args.workers,
        progress=progress,  # type: ignore[arg-type]
    )
    print(f"wrote {out}: {args.solver} maps, slices solved in chunks of {args.chunk_slices}")
    return 0


_COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_simulate,
    _add_plugins,
    _add_physics,
    _add_study,
    _add_solve,
]


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="edstomo",
        description="Quantitative 3D chemical maps from STEM-EDS and HAADF tilt series.",
        epilog=safety.EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"edstomo {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in _COMMANDS:
        add(sub)
    for add in _command_plugins():
        add(sub)
    return parser


COMMAND_GROUP = "edstomo.commands"
"""Entry-point group of further sub-commands: each entry point is a function ``add(subparsers)``
that declares one sub-command and sets its ``func`` (as the built-in ``_add_*`` functions do)."""


def _command_plugins() -> list[Callable[[argparse._SubParsersAction], None]]:
    """The ``add`` functions of the sub-commands that installed packages declare (sorted by name)."""
    from importlib.metadata import entry_points

    found = []
    for point in sorted(entry_points(group=COMMAND_GROUP), key=lambda p: p.name):
        try:
            found.append(point.load())
        except Exception as error:  # a broken third-party command must not break the others
            print(f"edstomo: command {point.name!r} failed to load: {error}", file=sys.stderr)
    return found


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``edstomo`` command; returns the exit code (see :mod:`edstomo.safety`)."""
    return safety.main(build_parser, argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


__all__ = ["build_parser", "main"]
