"""One plane of several elements for several methods, side by side with shared colour limits.

Reads the ``maps_<solver>.h5`` files that ``edstomo quantify`` wrote into a
folder and draws, for each element (rows) and method (columns), the x–y plane
of the section's mid-depth (the depth holding most particle voxels of the
first method), every method with the same colour limits per element (0 to the
99.5th percentile of the element's fractions in all the methods' particles,
stated under the figure). Run::

    edstomo quantify ../shared/data/openNCEM_L2083-K-4-1_EDS_tilt_series --out idp \\
        --solver sirt --solver hebt-sirt --solver poisson-tv --solver fused
    python examples/compare_methods_figure.py idp --elements S Ni Fe Si --out methods.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edstomo import figures
from edstomo.data import load
from edstomo_microscope.pictures import colour_limits, plane_indices

ORDER = ("sirt", "hebt-sirt", "poisson-tv", "fused")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="folder with maps_<solver>.h5 files")
    parser.add_argument("--elements", nargs="+", default=["S", "Ni", "Fe", "Si"])
    parser.add_argument("--out", type=Path, default=Path("methods.png"))
    args = parser.parse_args()
    from matplotlib.figure import Figure

    found = {path.stem.removeprefix("maps_"): load(path) for path in sorted(args.folder.glob("maps_*.h5"))}
    methods = [m for m in ORDER if m in found] + [m for m in found if m not in ORDER]
    maps = [found[m] for m in methods]
    z, _, _ = plane_indices(maps[0])
    limits = colour_limits(maps, args.elements)
    pixel = maps[0].pixel_size.m_as("nm")
    fig = Figure(figsize=(1.9 * len(methods) + 0.8, 1.9 * len(args.elements)), layout="constrained")
    axes = fig.subplots(len(args.elements), len(methods), squeeze=False)
    for row, element in enumerate(args.elements):
        low, high, _ = limits[element]
        for column, (method, result) in enumerate(zip(methods, maps)):
            shown = figures.image_panel(
                axes[row, column],
                result.fraction(element)[z],
                pixel,
                limits=(low, high),
                title=f"{element}, {method}",
                xlabel="x",
                ylabel="y, tilt axis" if column == 0 else "",
            )
        figures.colour_bar(fig, shown, axes[row, :].tolist(), f"{element} weight fraction", clipped=True, shrink=0.9)
    statement = "; ".join(f"{e} {limits[e][2]}" for e in args.elements)
    figures.caption(fig, f"x–y plane at depth z = {z} (same plane and colour limits for every method): {statement}")
    print(figures.save(fig, args.out))


if __name__ == "__main__":
    main()
