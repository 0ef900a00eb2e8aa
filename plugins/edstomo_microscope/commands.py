"""The microscope commands of the ``edstomo`` command line: ``reconstruct``, ``quantify`` and ``view``.

They are registered in the entry-point group ``edstomo.commands`` (see
:mod:`edstomo.cli`), like any third-party command: the core command line
knows nothing of the microscope workflow. Their ``--help`` shows every
default; third-party deprecation warnings are hidden while they run
(:func:`~edstomo_microscope.quiet.quiet_third_party`) and model notes are
printed once, as notes.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from edstomo import safety
from edstomo.errors import EdstomoError


class DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Help that shows every default: ``(default: X)`` is appended unless the help text already names the
    default, which it must do in words when the default is None (e.g. "default: from the metadata")."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.required or action.default in (None, argparse.SUPPRESS):
            return text
        return super()._get_help_string(action)


#: Help formatter of the microscope commands.
FORMATTER = DefaultsFormatter


def _microscope_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared by 'reconstruct' and 'quantify' (see edstomo_microscope.pipeline.PipelineOptions)."""
    from edstomo.distributed import add_distributed_arguments

    p.add_argument("--out", required=True, help="output folder (created if needed)")
    p.add_argument("--lines", help="comma-separated X-ray lines (default: C,O,Mg,Si,S,Fe,Ni Ka and Pt_La)")
    p.add_argument("--rebin", type=int, default=2, help="spatial rebinning factor, sum of N x N pixels")
    p.add_argument(
        "--absorption",
        action="store_true",
        help="correct X-ray absorption in the specimen (3-D, detector geometry from the files; iterates each solver)",
    )
    p.add_argument(
        "--absorption-density",
        default="mixture",
        help="specimen density for --absorption: 'mixture' (pure elements), 'maps' (the maps' scale) or g/cm³",
    )
    p.add_argument("--crop", help="region kept before rebinning: y0,y1,x0,x1, original pixels (default: all)")
    p.add_argument("--angles", help="comma-separated tilt angles in deg, in file order (default: metadata/names)")
    p.add_argument("--tilt-axis", choices=["vertical", "horizontal"], default="vertical", help="axis in the images")
    p.add_argument(
        "--intensities",
        choices=["fit", "window"],
        default="fit",
        help="line intensities: fit line families and continuum per pixel (default), or integrate windows",
    )
    p.add_argument("--elements", help="comma-separated elements expected besides those of --lines (modelled)")
    p.add_argument("--smooth", type=float, default=1.0, help="Gaussian sigma (pixels) on line maps before clipping")
    p.add_argument("--normalise", choices=["equal", "slab", "none"], default="equal", help="per-tilt normalisation")
    p.add_argument("--haadf-eds", choices=["none", "com", "xcorr"], default="none", help="HAADF-to-EDS alignment")
    p.add_argument(
        "--series", choices=["xcorr", "com", "stackreg", "none"], default="xcorr", help="tilt-series alignment"
    )
    p.add_argument("--axis", choices=["auto", "none"], default="auto", help="tilt-axis offset and rotation")
    p.add_argument("--alignment", help="use this saved alignment (JSON) instead of estimating one (default: estimate)")
    p.add_argument(
        "--solver",
        action="append",
        metavar="NAME",
        help="a solver to run (repeatable; default: the default EDS-only solver and, with a HAADF channel, the "
        "default bimodal one); see 'edstomo plugins solver'",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="PLUGIN.KEY=VALUE",
        help="an option of a solver or of the physics, e.g. sirt.iterations=80 or physics.cascade=full "
        "(options a solver can choose from the data, e.g. iterations and HEBT's alpha, default to 'auto'); "
        "repeatable",
    )
    p.add_argument(
        "--ratios", choices=["physics", "fit"], default="physics", help="response ratios r_A for solvers that take them"
    )
    p.add_argument("--pad", type=float, default=0.25, help="padding of the positions, fraction per side")
    p.add_argument("--physics", help="physics plugin (default: the default physics plugin, see 'edstomo plugins')")
    p.add_argument("--beam-energy", help="beam energy with its unit (default: from the metadata)")
    p.add_argument("--pixel-size", help="pixel size with its unit, original pixels (default: from the metadata)")
    p.add_argument("--probe-current", help="probe current with its unit (default: metadata, else 100 pA)")
    p.add_argument("--solid-angle", help="EDS solid angle with its unit (default: metadata, else 0.7 sr)")
    p.add_argument("--no-figures", action="store_true", help="do not draw the figures")
    p.add_argument(
        "--figure-format",
        action="append",
        choices=["svg", "pdf"],
        default=[],
        help="also save the figures as SVG or PDF (repeatable; default: 150-dpi PNG only)",
    )
    p.add_argument("--tiff", action="store_true", help="also write float32 TIFF stacks of volumes and maps (tiff/)")
    p.add_argument(
        "--hspy",
        action="store_true",
        help="also write volumes and maps as HyperSpy/etspy stacks (hspy/; the tilt series always are)",
    )
    add_distributed_arguments(p, optional=True)
    safety.add_arguments(p, output="folder")


def _dask_options(args: argparse.Namespace) -> object:
    """DaskOptions when --scheduler, --chunk-slices or --workers is given; None: solve in this process."""
    from edstomo.distributed import DEFAULT_CHUNK_SLICES

    from .pipeline import DaskOptions

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


def _pipeline_options(args: argparse.Namespace, threshold: object = "esf") -> object:
    from edstomo.units import ureg

    from .loading import DEFAULT_LINES
    from .pipeline import PipelineOptions

    crop = _numbers(args.crop, "--crop", 4)
    plugin_options = _plugin_options(args)
    load = {
        "beam_energy": args.beam_energy,
        "pixel_size": args.pixel_size,
        "probe_current": args.probe_current,
        "solid_angle": args.solid_angle,
        "elements": [v.strip() for v in args.elements.split(",") if v.strip()] if args.elements else None,
    }
    return PipelineOptions(
        lines=[v.strip() for v in args.lines.split(",") if v.strip()] if args.lines else DEFAULT_LINES,
        rebin=args.rebin,
        crop=None if crop is None else tuple(int(v) for v in crop),
        angles=None if args.angles is None else ureg.Quantity(_numbers(args.angles, "--angles"), "deg"),
        tilt_axis=args.tilt_axis,
        intensities=args.intensities,
        smooth=args.smooth,
        load_options={k: v for k, v in load.items() if v is not None},
        haadf_eds=args.haadf_eds,
        series=args.series,
        axis=args.axis,
        alignment=args.alignment,
        normalise=args.normalise,
        physics=args.physics,
        physics_options=plugin_options["physics"],
        solvers=args.solver,
        solver_options={k: v for k, v in plugin_options.items() if k != "physics"},
        ratios=args.ratios,
        pad=args.pad,
        threshold=threshold,
        uncertainty=getattr(args, "uncertainty", 0),  # quantify only
        seed=getattr(args, "seed", 0),
        absorption={"density": _density(args.absorption_density)} if args.absorption else None,
    )


def _density(text: str) -> str | float:
    """``--absorption-density``: a keyword or a number (g/cm³)."""
    if text in ("mixture", "maps"):
        return text
    try:
        return float(text.removesuffix("g/cm3").removesuffix("g/cm**3").strip())
    except ValueError:
        raise EdstomoError(
            f"--absorption-density: {text!r} must be 'mixture', 'maps' or a density in g/cm³ (e.g. 3.3)"
        ) from None


def _plugin_options(args: argparse.Namespace) -> dict[str, dict[str, object]]:
    """``--set PLUGIN.KEY=VALUE`` as ``{"physics": {...}, solver: {...}}`` (validated by the plugins)."""
    from edstomo.errors import OptionError
    from edstomo.options import parse_assignment

    options: dict[str, dict[str, object]] = {"physics": {}}
    for item in args.set:
        key, value = parse_assignment(item)
        target, dot, option = key.partition(".")
        if not dot or not option:
            raise OptionError("--set", key, value, "expected PLUGIN.KEY=VALUE, e.g. sirt.iterations=80")
        if target != "physics" and args.solver and target not in args.solver:
            raise OptionError("--set", key, value, f"{target!r} is neither 'physics' nor a solver of --solver")
        options.setdefault(target, {})[option] = value
    return options


def _source(paths: list[str]) -> object:
    return paths[0] if len(paths) == 1 else paths


def _print_notes(summary: dict) -> None:
    for note in summary["notes"]:
        print(f"  note: {note}")
    for warning in summary.get("warnings", []):
        print(f"  WARNING: {warning}")


def _print_run(result: object, out: str) -> None:
    summary = result.summary()  # type: ignore[attr-defined]
    print(f"results in {out}: aligned series {summary['shape_aligned']} (channels, tilts, positions, slices)")
    _print_notes(summary)
    print("  time per step (s): " + ", ".join(f"{k} {v:.1f}" for k, v in summary["timings_s"].items()))


def _extras(args: argparse.Namespace) -> None:
    """What the options ask for besides the pipeline's own output: TIFF stacks, SVG/PDF figures."""
    from .export import format_size, output_size, tiff_from_folder

    written = []
    if args.tiff:
        written += tiff_from_folder(args.out)
    if args.figure_format and not args.no_figures:
        from .pictures import figures_from_folder

        written += figures_from_folder(args.out, formats=args.figure_format)
        written += [p.with_suffix(f".{f}") for p in list(written) for f in args.figure_format if p.suffix == ".png"]
    if written:
        print(f"  also wrote {len(written)} files ({format_size(output_size(written))}): TIFF and/or vector figures")


def add_reconstruct(sub: argparse._SubParsersAction, argv: Sequence[str] = ()) -> None:
    p = sub.add_parser(
        "reconstruct",
        formatter_class=FORMATTER,
        help="reconstruct volumes (EDS-only and bimodal by default) from microscope files (.bcf/.emd/.hspy)",
        description="Load a tilt series (a folder, a stacked file or one file per tilt), make background-"
        "subtracted line maps, align, and reconstruct one volume per solver (--solver, repeatable; default the "
        "default EDS-only and bimodal solvers); writes the tilt series, alignment.json, volume_<solver>.h5 "
        "(hspy/ for HyperSpy and etspy: the tilt series, and the volumes with --hspy; tiff/ with --tiff), figures "
        "and summary.json to --out. With "
        "--scheduler, --chunk-slices or --workers the reconstructions run in slice chunks on a Dask cluster "
        "(same results).",
    )
    p.add_argument("source", nargs="+", help="folder of tilt files, a stacked file, or one file per tilt")
    _microscope_arguments(p)
    p.set_defaults(func=_run_reconstruct)


def _run_reconstruct(args: argparse.Namespace) -> int:
    from edstomo.study import ProgressPrinter

    from .metadata import MetadataWarning
    from .pipeline import run_pipeline
    from .quiet import quiet_third_party

    safety.prepare(args, output="folder", inputs=[*args.source, args.alignment])
    options = _pipeline_options(args)
    with quiet_third_party(MetadataWarning):
        result = run_pipeline(
            _source(args.source),
            options,  # type: ignore[arg-type]
            out=args.out,
            quantify=False,
            pictures=not args.no_figures,
            progress=ProgressPrinter(),
            dask=_dask_options(args),  # type: ignore[arg-type]
            hspy=args.hspy,
        )
        _print_run(result, args.out)
        _extras(args)
    return 0


def add_quantify(sub: argparse._SubParsersAction, argv: Sequence[str] = ()) -> None:
    p = sub.add_parser(
        "quantify",
        formatter_class=FORMATTER,
        help="weight-fraction maps from microscope files, or from volumes written by 'reconstruct'",
        description="With microscope files (a folder, a stacked file or one file per tilt): the whole pipeline, "
        "from line maps to weight fractions for every solver (each volume quantified by the quantifier that "
        "accepts its maps). With volume_*.h5 files written by 'edstomo reconstruct' (or their folder): only "
        "the quantification. Writes HDF5 maps (.hspy with --hspy, TIFF with --tiff), figures and a summary to --out.",
    )
    p.add_argument("source", nargs="+", help="microscope files or their folder, or volume_*.h5 files or their folder")
    _microscope_arguments(p)
    p.add_argument(
        "--threshold",
        action="append",
        default=[],
        metavar="METHOD=VALUE",
        help="particle threshold of one method (the solver that made the volume, e.g. sirt or hebt-sirt) on its "
        "summed map S = Σ X_A/f_A or Σ X_A/z_A, or "
        "'esf' (default: ESF, Otsu if ESF fails); repeat for the other method; a bare VALUE only when one "
        "method is quantified (the two summed maps are on different scales)",
    )
    p.add_argument(
        "--uncertainty",
        type=int,
        default=0,
        metavar="N",
        help="per-voxel error bars and intervals of the particle means from N >= 2 bootstrap replicas "
        "(each redrawn, solved and quantified; 0: none)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap replicas")
    p.set_defaults(func=_run_quantify)


def _thresholds(items: list[str]) -> object:
    """``--threshold`` values: "esf", one bare value, or {method: value} from METHOD=VALUE items."""
    from edstomo.errors import InputError

    if not items:
        return "esf"
    named = [item for item in items if "=" in item]
    if not named:
        if len(items) > 1:
            raise InputError(f"--threshold: {items} gives several bare values; write METHOD=VALUE for each method")
        return items[0]
    if len(named) != len(items):
        raise InputError(f"--threshold: {items} mixes METHOD=VALUE and bare values; write METHOD=VALUE for each")
    chosen: dict[str, str] = {}
    for item in named:
        method, _, value = (part.strip() for part in item.partition("="))
        if method in chosen:
            raise InputError(f"--threshold: {method!r} is given twice")
        chosen[method] = value
    return chosen


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
    from .metadata import MetadataWarning
    from .quiet import quiet_third_party

    with quiet_third_party(MetadataWarning):
        _quantify(args)
        _extras(args)
    return 0


def _quantify(args: argparse.Namespace) -> None:
    from edstomo.study import ProgressPrinter

    from .pipeline import quantify_saved, run_pipeline

    safety.prepare(args, output="folder", inputs=[*args.source, args.alignment])
    threshold = _thresholds(args.threshold)
    saved = _saved_volumes(args.source)
    dask = _dask_options(args)
    if saved is not None and dask is not None:
        raise ValueError(
            "--scheduler/--chunk-slices/--workers: the source holds reconstructed volumes; "
            "quantifying them solves nothing (give the microscope files to reconstruct on Dask)"
        )
    if saved is not None and args.uncertainty:
        raise ValueError(
            "--uncertainty: the source holds reconstructed volumes; error bars need the tilt series "
            "(give the microscope files)"
        )
    if saved is not None:
        summary = quantify_saved(
            saved,
            args.out,
            physics=args.physics,
            physics_options=_plugin_options(args)["physics"],
            threshold=threshold,
            pictures=not args.no_figures,
            progress=ProgressPrinter(),
            hspy=args.hspy,
        )
        print(f"quantified {len(saved)} volume(s); results in {args.out}")
        _print_notes(summary)
    else:
        options = _pipeline_options(args, threshold)
        result = run_pipeline(
            _source(args.source),
            options,  # type: ignore[arg-type]
            out=args.out,
            pictures=not args.no_figures,
            progress=ProgressPrinter(),
            dask=dask,  # type: ignore[arg-type]
            hspy=args.hspy,
        )
        _print_run(result, args.out)
        summary = result.summary()
    from .errorbars import particle_means

    for method in summary["findings"]:
        print(f"  {method}: mean weight fractions in the particle: {particle_means(summary, method)}")


def add_view(sub: argparse._SubParsersAction, argv: Sequence[str] = ()) -> None:
    p = sub.add_parser(
        "view",
        formatter_class=FORMATTER,
        help="look at reconstructed volumes in napari (or write their figures when no viewer can open)",
        description="Open the weight-fraction maps (maps_*.h5) or, without them, the reconstructed volumes "
        "(volume_*.h5) of a result folder or file in napari: one layer per element named '<element> (<method>)', "
        "its own colour map, the voxel size in nm. Without napari (pip install 'edstomo[viewers]') or without a "
        "display (DISPLAY/WAYLAND_DISPLAY unset), the orthoslice figures are written instead.",
    )
    p.add_argument("result", help="a folder written by 'edstomo reconstruct'/'quantify', or one .h5 volume file")
    p.add_argument("--out", help="folder for the figures when they are written (default: RESULT/view)")
    p.add_argument("--elements", help="comma-separated elements (maps) or channels (volumes) to show (default: all)")
    p.add_argument("--figures", action="store_true", help="write the figures even when napari could open")
    formats = ["svg", "pdf"]
    p.add_argument("--figure-format", action="append", choices=formats, default=[], help="also SVG/PDF (default: PNG)")
    p.set_defaults(func=_run_view)


def _run_view(args: argparse.Namespace) -> int:
    from .metadata import MetadataWarning
    from .quiet import quiet_third_party
    from .viewer import view

    elements = [e.strip() for e in args.elements.split(",") if e.strip()] if args.elements else None
    with quiet_third_party(MetadataWarning):
        outcome = view(
            args.result, out=args.out, elements=elements, figures_only=args.figures, formats=args.figure_format
        )
    if outcome.mode == "figures":
        folder = Path(outcome.files[0]).parent if outcome.files else args.out
        print(f"{outcome.reason}: wrote {len(outcome.files)} figure(s) to {folder}")
        for path in outcome.files:
            print(f"  {path}")
    return 0
