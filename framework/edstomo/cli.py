"""The ``edstomo`` command line.

Each sub-command is a pair of functions: ``_add_<name>(subparsers, argv)`` declares
its arguments, ``_run_<name>(args)`` does the work and returns an exit code.
Plugins are chosen with ``--<slot> NAME`` and configured with ``--set KEY=VALUE``
or ``--options FILE`` (:mod:`edstomo.commandline`): the command line knows no
plugin by name and holds no plugin-specific option.  Further sub-commands come
from installed packages through the entry-point group ``edstomo.commands``.
A command that writes declares ``--overwrite``/``--allow-large``
(:func:`edstomo.safety.add_arguments`) and checks its output first
(:func:`edstomo.safety.prepare`). Errors in user input are printed as one line,
without a traceback; exit codes (:mod:`edstomo.safety`): 0 ok, 1 user error,
2 usage, 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from . import safety
from .commandline import (
    HelpFormatter,
    PluginSlot,
    add_plugin_arguments,
    chosen_plugins,
    options_help,
    read_run_file,
    slots_epilog,
)
from .errors import EdstomoError
from .experiment import Experiment
from .registry import KINDS, plugins

SIMULATE_SLOTS = (PluginSlot("phantom", "phantom"), PluginSlot("physics", "physics"), PluginSlot("forward", "forward"))
SOLVE_SLOTS = (PluginSlot("solver", "solver", frozenset({"lines"})),)
PHYSICS_SLOTS = (PluginSlot("physics", "physics"),)
STUDY_SLOTS = (PluginSlot("study", "study"),)


def _parser(sub: argparse._SubParsersAction, name: str, argv: Sequence[str], slots: Sequence[PluginSlot], **kw: Any):
    """A sub-command parser whose help ends with the options of the plugins the command line names."""
    return sub.add_parser(name, epilog=slots_epilog(argv, slots), formatter_class=HelpFormatter, **kw)


def _experiment_and_sections(path: str | None) -> tuple[Experiment, dict[str, Any]]:
    """The experiment of a file — a plain experiment, or a run file with an ``experiment:`` section and
    plugin sections — or, without a file, the default study's experiment."""
    if path is None:
        experiment = plugins.default("study")().experiment()
        if experiment is None:
            raise EdstomoError("experiment: give an experiment file; the default study defines no experiment")
        return experiment, {}
    content = read_run_file(path)
    if "experiment" in content:
        sections = {key: value for key, value in content.items() if key != "experiment"}
        return Experiment.model_validate(content["experiment"]), sections
    return Experiment.load(path), {}


# ----- simulate ----------------------------------------------------------------
def _add_simulate(sub: argparse._SubParsersAction, argv: Sequence[str]) -> None:
    p = _parser(
        sub,
        "simulate",
        argv,
        SIMULATE_SLOTS,
        help="simulate HAADF + EDS sinograms of a phantom",
        description="Simulate a tilt series of a phantom and save it to HDF5. EXPERIMENT is an experiment "
        "file, or a run file with an 'experiment:' section and plugin sections (phantom, physics, forward: "
        "{name: NAME, options: {...}}). Without EXPERIMENT, the default study's experiment is used.",
    )
    p.add_argument("experiment", nargs="?", help="experiment or run file (.yaml/.yml or .json)")
    p.add_argument("--out", required=True, help="output HDF5 file")
    p.add_argument("--seed", type=safety.non_negative_int, default=0, help="seed of the Poisson noise (default: 0)")
    p.add_argument("--no-noise", action="store_true", help="write the noise-free mean signal")
    p.add_argument("--haadf-noise", action="store_true", help="Poisson noise on the HAADF channel too")
    add_plugin_arguments(p, SIMULATE_SLOTS)
    safety.add_arguments(p, output="file")
    p.set_defaults(func=_run_simulate)


def _run_simulate(args: argparse.Namespace) -> int:
    from .resources import check_simulation

    safety.prepare(args, output="file", inputs=[args.experiment, getattr(args, "options", None)])
    experiment, sections = _experiment_and_sections(args.experiment)
    check_simulation(experiment)
    chosen = chosen_plugins(args, SIMULATE_SLOTS, sections)
    physics_cls, physics_options = chosen["physics"]
    phantom_cls, phantom_options = chosen["phantom"]
    forward_cls, forward_options = chosen["forward"]
    factors = physics_cls(**physics_options).compute(experiment)
    truth = phantom_cls(**phantom_options).generate(experiment)
    model = forward_cls(experiment, factors, **forward_options)
    noise = None if args.no_noise else "poisson"
    series = model.simulate(truth, noise=noise, seed=args.seed, haadf_noise=args.haadf_noise)
    path = series.save(args.out)
    print(f"wrote {path}: channels {series.channels}, shape {series.shape} (channels, tilts, positions, slices)")
    return 0


# ----- plugins -----------------------------------------------------------------
def _add_plugins(sub: argparse._SubParsersAction, argv: Sequence[str]) -> None:
    p = sub.add_parser(
        "plugins",
        help="list the registered plugins, or show one plugin's options",
        description="Without arguments: every plugin (kind, name, description). With KIND: the plugins of "
        "that kind. With KIND NAME: the options of that plugin, with types, defaults and help.",
    )
    p.add_argument("kind", nargs="?", choices=list(KINDS), help="only this kind")
    p.add_argument("name", nargs="?", help="show this plugin's options")
    p.set_defaults(func=_run_plugins)


def _run_plugins(args: argparse.Namespace) -> int:
    if args.name is not None:
        cls = plugins.get(args.kind, args.name)
        print(f"{cls.kind} {cls.name!r}: {cls.summary()}")
        print(options_help(args.kind, args.name))
        return 0
    infos = plugins.available(args.kind)
    width_kind = max((len(i.kind) for i in infos), default=4)
    width_name = max((len(i.name) for i in infos), default=4)
    for info in infos:
        mark = "*" if info.cls.default else " "
        print(f"{info.kind:<{width_kind}} {mark} {info.name:<{width_name}}  {info.description}")
    print("(* the default of its kind)")
    return 0


# ----- physics -----------------------------------------------------------------
def _add_physics(sub: argparse._SubParsersAction, argv: Sequence[str]) -> None:
    p = _parser(
        sub,
        "physics",
        argv,
        PHYSICS_SLOTS,
        help="compute the quantification factors f_A and z_A of X-ray lines",
        description="Print the physical parameters of each line (as in Table 2 of Yuan et al. 2020) and the "
        "factors f_A = σ_ion ω p ε / M and z_A = σ_ela / M (b·mol/g). Only the beam energy, the lines, the "
        "HAADF angles and the detector efficiency matter here: the tilts, scan and doses of the experiment "
        "built internally are placeholders that do not affect the factors.",
    )
    p.add_argument("lines", nargs="+", metavar="LINE", help="X-ray lines named as HyperSpy does, e.g. Co_Ka Au_Ma")
    p.add_argument("--beam-energy", required=True, help="beam energy with its unit, e.g. '80 keV'")
    p.add_argument("--efficiency", type=float, default=1.0, help="detector efficiency in (0, 1] (default: 1)")
    p.add_argument("--haadf-inner", default="94 mrad", help="HAADF inner angle (default: '94 mrad')")
    p.add_argument("--haadf-outer", default="611 mrad", help="HAADF outer angle (default: '611 mrad')")
    p.add_argument("--format", choices=("text", "json"), default="text", help="output format (default: text)")
    add_plugin_arguments(p, PHYSICS_SLOTS)
    p.set_defaults(func=_run_physics)


def _run_physics(args: argparse.Namespace) -> int:
    from .experiment import EDSDetector, HAADFDetector, Scan
    from .lines import parse_line
    from .units import as_beam_energy

    energy, _ = as_beam_energy(args.beam_energy, "--beam-energy")
    if not energy.magnitude > 0:
        raise EdstomoError(f"--beam-energy: {args.beam_energy!r} must be a positive energy (e.g. '80 keV')")
    for line in args.lines:
        parse_line(line)
    if not 0 < args.efficiency <= 1:
        raise EdstomoError(f"--efficiency: {args.efficiency!r} must lie in (0, 1]")
    physics_cls, options = chosen_plugins(args, PHYSICS_SLOTS)["physics"]
    experiment = Experiment(
        name="physics",
        beam_energy=energy,
        lines=args.lines,
        tilts=["0 deg"],
        scan=Scan(positions=1, pixel_size="1 nm"),
        haadf=HAADFDetector(electrons_per_pixel="1 e", inner_angle=args.haadf_inner, outer_angle=args.haadf_outer),
        eds=EDSDetector(electrons_per_pixel="1 e", solid_angle="1 sr", efficiency=args.efficiency),
    )
    factors = physics_cls(**options).compute(experiment)
    print(factors.to_json() if args.format == "json" else factors.table())
    return 0


# ----- study -------------------------------------------------------------------
def _add_study(sub: argparse._SubParsersAction, argv: Sequence[str]) -> None:
    names = [token for token in argv if token in plugins.names("study")]
    slots = STUDY_SLOTS
    p = sub.add_parser(
        "study",
        help="run a validation study and write its tables, summary and figures",
        description="Run a study plugin (see 'edstomo plugins study'), e.g. the default study, which "
        "simulates the phantom of Yuan et al. 2020 and sweeps the solvers. Options of the study with "
        "--set KEY=VALUE; left out, they keep the study's defaults.",
        epilog=options_help("study", names[0]) if names else slots_epilog(argv, slots),
        formatter_class=HelpFormatter,
    )
    p.add_argument("name", help="study plugin (see 'edstomo plugins study')")
    p.add_argument("--out", required=True, help="output folder (created if needed)")
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="a study option, e.g. seed=1; repeatable"
    )
    p.add_argument("--options", metavar="FILE", help="YAML/JSON file {study: {options: {KEY: VALUE}}}")
    safety.add_arguments(p, output="folder")
    p.set_defaults(func=_run_study)


def _run_study(args: argparse.Namespace) -> int:
    import time

    from .study import ProgressPrinter

    safety.prepare(args, output="folder", inputs=[args.options])
    args.study = args.name
    study_cls, options = chosen_plugins(args, STUDY_SLOTS)["study"]
    start = time.perf_counter()
    summary = study_cls(**options).run(args.out, progress=ProgressPrinter())
    print(f"{args.name}: finished in {time.perf_counter() - start:.1f} s; results in {args.out}")
    for group, values in summary.items():
        print(f"[{group}]")
        for key, value in values.items() if isinstance(values, dict) else [("value", values)]:
            shown = f"{value:.4f}" if isinstance(value, float) else str(value)
            print(f"  {key:<20} {shown}")
    return 0


# ----- solve -------------------------------------------------------------------
def _add_solve(sub: argparse._SubParsersAction, argv: Sequence[str]) -> None:
    from .distributed import add_distributed_arguments

    p = _parser(
        sub,
        "solve",
        argv,
        SOLVE_SLOTS,
        help="reconstruct a saved tilt series (HDF5) with any solver, slice chunk by slice chunk on Dask",
        description="Reconstruct the tilt series in an edstomo HDF5 file (from 'edstomo simulate', or the "
        "tilt_series_aligned.h5 of 'edstomo reconstruct') with one solver (--solver NAME, options with --set). "
        "The slices are solved in chunks of --chunk-slices on a Dask cluster (a local one unless --scheduler "
        "names a running scheduler); each task reads its slices from the file and writes its maps to disk, so "
        "the volume never has to fit in memory. Options a solver would estimate from the data (e.g. response "
        "ratios) are estimated once on the whole series first. The input and output folders must be visible "
        "to every worker.",
    )
    p.add_argument("series", help="edstomo tilt-series HDF5 file")
    p.add_argument("--out", required=True, help="output volume HDF5 file")
    add_plugin_arguments(p, SOLVE_SLOTS)
    add_distributed_arguments(p)
    p.add_argument("--no-progress", action="store_true", help="do not show progress")
    safety.add_arguments(p, output="file")
    p.set_defaults(func=_run_solve)


def _run_solve(args: argparse.Namespace) -> int:
    from .data import TiltSeries
    from .distributed import solve_file
    from .resources import check_solve_file

    safety.prepare(args, output="file", inputs=[args.series, getattr(args, "options", None)])
    check_solve_file(args.series, args.chunk_slices, args.workers)
    solver_cls, options = chosen_plugins(args, SOLVE_SLOTS)["solver"]
    solver = solver_cls(**options)
    unfitted = solver.unfitted()
    if unfitted:  # estimated once on the whole series, so that every chunk uses the same values
        solver = solver.prepare(TiltSeries.load(args.series))
        fitted = ", ".join(f"{name} {getattr(solver.options, name)}" for name in unfitted)
        print(f"estimated once on the whole series: {fitted}")
    out = solve_file(
        solver,
        args.series,
        args.out,
        chunk_slices=args.chunk_slices,
        scheduler=args.scheduler,
        workers=args.workers,
        progress=None if args.no_progress else True,
    )
    print(f"wrote {out}: {solver.name} maps, slices solved in chunks of {args.chunk_slices}")
    return 0


_COMMANDS: list[Callable[[argparse._SubParsersAction, Sequence[str]], None]] = [
    _add_simulate,
    _add_plugins,
    _add_physics,
    _add_study,
    _add_solve,
]

COMMAND_GROUP = "edstomo.commands"
"""Entry-point group of further sub-commands: each entry point is a function ``add(subparsers, argv)``
that declares one sub-command and sets its ``func`` (as the built-in ``_add_*`` functions do)."""


def _command_plugins() -> list[Callable[[argparse._SubParsersAction, Sequence[str]], None]]:
    """The ``add`` functions of the sub-commands that installed packages declare (sorted by name)."""
    from importlib.metadata import entry_points

    found = []
    for point in sorted(entry_points(group=COMMAND_GROUP), key=lambda p: p.name):
        try:
            found.append(point.load())
        except Exception as error:  # a broken third-party command must not break the others
            print(f"edstomo: command {point.name!r} failed to load: {error}", file=sys.stderr)
    return found


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The whole parser; ``argv`` (the command line) lets each ``--help`` list the named plugins' options."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="edstomo",
        description="Quantitative 3D chemical maps from STEM-EDS and HAADF tilt series.",
        epilog=safety.EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"edstomo {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in [*_COMMANDS, *_command_plugins()]:
        add(sub, argv)
    return parser


def _log_progress_to_stderr() -> None:
    """Show the ``edstomo`` loggers' INFO lines (progress of long runs) on stderr, once."""
    import logging

    logger = logging.getLogger("edstomo")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``edstomo`` command; returns the exit code (see :mod:`edstomo.safety`)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    _log_progress_to_stderr()
    return safety.main(build_parser, argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


__all__ = ["build_parser", "main"]
