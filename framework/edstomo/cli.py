"""The ``edstomo`` command line.

Each sub-command is a pair of functions: ``_add_<name>(subparsers)`` declares
its arguments, ``_run_<name>(args)`` does the work and returns an exit code.
Errors in user input are printed as one line, without a traceback, with exit
code 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

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
    p.add_argument("--seed", type=int, default=0, help="seed of the Poisson noise (default: 0)")
    p.add_argument("--no-noise", action="store_true", help="write the noise-free mean signal")
    p.set_defaults(func=_run_simulate)


def _run_simulate(args: argparse.Namespace) -> int:
    experiment = _load_experiment(args.experiment)
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

    from pydantic import ValidationError

    from .experiment import EDSDetector, HAADFDetector, Scan
    from .lines import parse_line
    from .units import as_quantity

    energy = as_quantity(args.beam_energy, "keV", "--beam-energy")
    if not energy.magnitude > 0:
        raise ValueError(f"--beam-energy: {args.beam_energy!r} must be a positive energy (e.g. '80 keV')")
    for line in args.lines:
        parse_line(line)
    options = _physics_options(args)
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
    try:
        experiment = Experiment(
            name="physics",
            beam_energy=energy,
            lines=args.lines,
            tilts=["0 deg"],
            scan=Scan(positions=1, pixel_size="1 nm"),
            haadf=HAADFDetector(electrons_per_pixel="1 e", inner_angle=args.haadf_inner, outer_angle=args.haadf_outer),
            eds=EDSDetector(electrons_per_pixel="1 e", solid_angle="1 sr", efficiency=constant or 1.0),
        )
    except ValidationError as error:
        raise ValueError("; ".join(item["msg"].removeprefix("Value error, ") for item in error.errors())) from None
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
    p.add_argument("--seed", type=int, help="seed of the Poisson noise (default: 0)")
    p.add_argument("--no-figures", action="store_true", help="do not draw the PNG figures (no matplotlib needed)")
    p.add_argument("--quick", action="store_true", help="a reduced sweep (fewer alpha values and iterations)")
    p.set_defaults(func=_run_study)


def _run_study(args: argparse.Namespace) -> int:
    import inspect
    import time

    from .study import ProgressPrinter

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


# ----- reconstruct / quantify (real microscope data) ----------------------------
def _microscope_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared by 'reconstruct' and 'quantify' (see edstomo.microscope.pipeline.PipelineOptions)."""
    from .distributed import add_distributed_arguments

    p.add_argument("--out", required=True, help="output folder (created if needed)")
    p.add_argument("--lines", help="comma-separated X-ray lines (default: C,O,Mg,Si,S,Fe,Ni Ka and Pt_La)")
    p.add_argument("--rebin", type=int, default=2, help="spatial rebinning factor, sum of N x N pixels (default: 2)")
    p.add_argument("--crop", help="region kept before rebinning: y0,y1,x0,x1 in original pixels")
    p.add_argument("--angles", help="comma-separated tilt angles in deg, in file order (default: metadata/file names)")
    p.add_argument("--tilt-axis", choices=["vertical", "horizontal"], default="vertical", help="axis in the images")
    p.add_argument("--smooth", type=float, default=1.0, help="Gaussian sigma (pixels) on line maps before clipping")
    p.add_argument("--normalise", choices=["equal", "slab", "none"], default="equal", help="per-tilt normalisation")
    p.add_argument("--haadf-eds", choices=["none", "com", "xcorr"], default="none", help="HAADF-to-EDS alignment")
    p.add_argument("--series", choices=["xcorr", "com", "none"], default="xcorr", help="tilt-series alignment")
    p.add_argument("--axis", choices=["auto", "none"], default="auto", help="tilt-axis offset and rotation")
    p.add_argument("--alignment", help="use this saved alignment (JSON) instead of estimating one")
    p.add_argument("--eds-iterations", type=int, default=50, help="EDS-only SIRT iterations (default: 50)")
    p.add_argument("--hebt-iterations", type=int, default=100, help="HEBT iterations (default: 100)")
    p.add_argument("--alpha", type=float, default=0.8, help="HEBT weight of the HAADF term (default: 0.8)")
    p.add_argument("--ratios", choices=["physics", "fit"], default="physics", help="HEBT response ratios r_A")
    p.add_argument("--pad", type=float, default=0.25, help="padding of the positions, fraction per side (0.25)")
    p.add_argument("--physics", default="mcxray", help="physics plugin (default: mcxray)")
    p.add_argument("--beam-energy", help="beam energy with its unit, replacing the metadata")
    p.add_argument("--pixel-size", help="pixel size with its unit (original pixels), replacing the metadata")
    p.add_argument("--probe-current", help="probe current with its unit, replacing the metadata or assumption")
    p.add_argument("--solid-angle", help="EDS solid angle with its unit (default assumed: 0.7 sr)")
    p.add_argument("--no-figures", action="store_true", help="do not draw the PNG figures")
    add_distributed_arguments(p, optional=True)


def _dask_options(args: argparse.Namespace) -> object:
    """DaskOptions when --scheduler, --chunk-slices or --workers is given; None: solve in this process."""
    from .distributed import DEFAULT_CHUNK_SLICES
    from .microscope.pipeline import DaskOptions

    if args.scheduler is None and args.chunk_slices is None and args.workers is None:
        return None
    return DaskOptions(
        scheduler=args.scheduler,
        chunk_slices=DEFAULT_CHUNK_SLICES if args.chunk_slices is None else args.chunk_slices,
        workers=1 if args.workers is None else args.workers,
    )


def _numbers(text: str | None, name: str, count: int | None = None) -> list[float] | None:
    if text is None:
        return None
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{name}: {text!r} is not a comma-separated list of numbers") from None
    if count is not None and len(values) != count:
        raise ValueError(f"{name}: {text!r} must hold {count} numbers")
    return values


def _pipeline_options(args: argparse.Namespace) -> object:
    from .microscope.loading import DEFAULT_LINES
    from .microscope.pipeline import PipelineOptions
    from .units import ureg

    crop = _numbers(args.crop, "--crop", 4)
    load = {
        "beam_energy": args.beam_energy,
        "pixel_size": args.pixel_size,
        "probe_current": args.probe_current,
        "solid_angle": args.solid_angle,
    }
    return PipelineOptions(
        lines=[v.strip() for v in args.lines.split(",") if v.strip()] if args.lines else DEFAULT_LINES,
        rebin=args.rebin,
        crop=None if crop is None else tuple(int(v) for v in crop),
        angles=None if args.angles is None else ureg.Quantity(_numbers(args.angles, "--angles"), "deg"),
        tilt_axis=args.tilt_axis,
        smooth=args.smooth,
        load_options={k: v for k, v in load.items() if v is not None},
        haadf_eds=args.haadf_eds,
        series=args.series,
        axis=args.axis,
        alignment=args.alignment,
        normalise=args.normalise,
        physics=args.physics,
        eds_iterations=args.eds_iterations,
        hebt_iterations=args.hebt_iterations,
        alpha=args.alpha,
        ratios=args.ratios,
        pad=args.pad,
    )


def _source(paths: list[str]) -> object:
    return paths[0] if len(paths) == 1 else paths


def _print_run(result: object, out: str) -> None:
    summary = result.summary()  # type: ignore[attr-defined]
    print(f"results in {out}: aligned series {summary['shape_aligned']} (channels, tilts, positions, slices)")
    for note in summary["notes"]:
        print(f"  note: {note}")
    print("  time per step (s): " + ", ".join(f"{k} {v:.1f}" for k, v in summary["timings_s"].items()))


def _add_reconstruct(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "reconstruct",
        help="reconstruct EDS-only (SIRT) and HEBT volumes from microscope files (.bcf/.emd/.hspy)",
        description="Load a tilt series (a folder, a stacked file or one file per tilt), make background-"
        "subtracted line maps, align, and reconstruct EDS-only SIRT and HEBT volumes; writes the tilt series, "
        "alignment.json, volume_eds.h5 and volume_hebt.h5 (and .tif) and summary.json to --out. With --scheduler, "
        "--chunk-slices or --workers the reconstructions run in slice chunks on a Dask cluster (same results).",
    )
    p.add_argument("source", nargs="+", help="folder of tilt files, a stacked file, or one file per tilt")
    _microscope_arguments(p)
    p.set_defaults(func=_run_reconstruct)


def _run_reconstruct(args: argparse.Namespace) -> int:
    from .microscope.pipeline import run_pipeline
    from .study import ProgressPrinter

    options = _pipeline_options(args)
    result = run_pipeline(
        _source(args.source),
        options,  # type: ignore[arg-type]
        out=args.out,
        quantify=False,
        pictures=not args.no_figures,
        progress=ProgressPrinter(),
        dask=_dask_options(args),  # type: ignore[arg-type]
    )
    _print_run(result, args.out)
    return 0


def _add_quantify(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "quantify",
        help="weight-fraction maps from microscope files, or from volumes written by 'reconstruct'",
        description="With microscope files (a folder, a stacked file or one file per tilt): the whole pipeline, "
        "from line maps to weight fractions by EDS-only SIRT and HEBT. With volume_*.h5 files written by "
        "'edstomo reconstruct' (or their folder): only the quantification. Writes HDF5, .hspy and TIFF maps, "
        "figures and a summary to --out.",
    )
    p.add_argument("source", nargs="+", help="microscope files or their folder, or volume_*.h5 files or their folder")
    _microscope_arguments(p)
    p.add_argument("--threshold", help="particle threshold on the summed map (default: ESF, Otsu if ESF fails)")
    p.set_defaults(func=_run_quantify)


def _saved_volumes(paths: list[str]) -> list[str] | None:
    """The volume files to quantify, when the source names saved volumes (or their folder); else None."""
    from pathlib import Path

    if len(paths) == 1 and Path(paths[0]).is_dir():
        folder = Path(paths[0])
        volumes = sorted(str(p) for p in folder.glob("volume_*.h5"))
        tilts = [p for p in folder.iterdir() if p.suffix.lower() in (".bcf", ".emd", ".hspy", ".zspy")]
        return volumes if volumes and not tilts else None
    if all(Path(p).suffix.lower() in (".h5", ".hdf5") for p in paths):
        return list(paths)
    return None


def _run_quantify(args: argparse.Namespace) -> int:
    from .microscope.pipeline import quantify_saved, run_pipeline
    from .study import ProgressPrinter

    threshold: float | str = "esf" if args.threshold is None else float(args.threshold)
    saved = _saved_volumes(args.source)
    dask = _dask_options(args)
    if saved is not None and dask is not None:
        raise ValueError(
            "--scheduler/--chunk-slices/--workers: the source holds reconstructed volumes; "
            "quantifying them solves nothing (give the microscope files to reconstruct on Dask)"
        )
    if saved is not None:
        summary = quantify_saved(
            saved,
            args.out,
            physics=args.physics,
            threshold=threshold,
            pictures=not args.no_figures,
            progress=ProgressPrinter(),
        )
        print(f"quantified {len(saved)} volume(s); results in {args.out}")
        for note in summary["notes"]:
            print(f"  note: {note}")
    else:
        options = _pipeline_options(args)
        options.threshold = threshold  # type: ignore[attr-defined]
        result = run_pipeline(
            _source(args.source),
            options,  # type: ignore[arg-type]
            out=args.out,
            pictures=not args.no_figures,
            progress=ProgressPrinter(),
            dask=dask,  # type: ignore[arg-type]
        )
        _print_run(result, args.out)
        summary = result.summary()
    for method, found in summary["findings"].items():
        shares = ", ".join(
            f"{element} {entry['mean_weight_fraction']:.3f}" for element, entry in found["elements"].items()
        )
        print(f"  {method}: mean weight fractions in the particle: {shares}")
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
            options["ratios"] = ratios
        else:
            from .data import TiltSeries
            from .preprocessing import response_ratios

            series = TiltSeries.load(args.series)
            fit = response_ratios(series, options.get("channels"))  # type: ignore[arg-type]
            print(f"response ratios fitted to the whole series: {fit.ratios} (R² = {fit.r_squared:.3f})")
            options["ratios"] = fit.ratios
    for key in options:
        if key not in accepted:
            raise ValueError(f"--{key}: the {args.solver!r} solver has no such option")
    return options


def _run_solve(args: argparse.Namespace) -> int:
    from .distributed import solve_file

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
    _add_reconstruct,
    _add_quantify,
    _add_solve,
]


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="edstomo", description="Quantitative 3D chemical maps from STEM-EDS and HAADF tilt series."
    )
    parser.add_argument("--version", action="version", version=f"edstomo {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in _COMMANDS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``edstomo`` command."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, KeyError, LookupError, FileNotFoundError, TypeError) as error:
        message = str(error).strip("'\"")
        print(f"edstomo {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


__all__ = ["build_parser", "main"]
