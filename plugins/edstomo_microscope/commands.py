"""The microscope commands of the ``edstomo`` command line: ``reconstruct`` and ``quantify``.

They are registered in the entry-point group ``edstomo.commands`` (see
:mod:`edstomo.cli`), like any third-party command: the core command line
knows nothing of the microscope workflow.
"""

from __future__ import annotations

import argparse

from edstomo import safety


def _microscope_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared by 'reconstruct' and 'quantify' (see edstomo_microscope.pipeline.PipelineOptions)."""
    from edstomo.distributed import add_distributed_arguments

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
        threshold=threshold,
    )


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


def add_reconstruct(sub: argparse._SubParsersAction) -> None:
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
    from edstomo.study import ProgressPrinter

    from .pipeline import run_pipeline

    safety.prepare(args, output="folder", inputs=[*args.source, args.alignment])
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


def add_quantify(sub: argparse._SubParsersAction) -> None:
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
    p.add_argument(
        "--threshold",
        action="append",
        default=[],
        metavar="METHOD=VALUE",
        help="particle threshold of one method (eds or hebt) on its summed map S = Σ X_A/f_A or Σ X_A/z_A, or "
        "'esf' (default: ESF, Otsu if ESF fails); repeat for the other method; a bare VALUE only when one "
        "method is quantified (the two summed maps are on different scales)",
    )
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
        )
        _print_run(result, args.out)
        summary = result.summary()
    for method, found in summary["findings"].items():
        shares = ", ".join(
            f"{element} {entry['mean_weight_fraction']:.3f}" for element, entry in found["elements"].items()
        )
        print(f"  {method}: mean weight fractions in the particle: {shares}")
    return 0
