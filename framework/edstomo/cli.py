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


_COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [_add_simulate, _add_plugins]


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
