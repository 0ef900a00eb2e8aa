"""The figure of the ``dose-sweep`` study: quality against EDS dose, one curve per method, seed spread shaded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edstomo import figures
from edstomo.study import ResultsTable

#: (metric, axis label) of the three panels.
PANELS = (
    ("ssim_quant_Ag", "quantified Ag SSIM-structure"),
    ("rmse_wt", "interior RMSE of weight fractions (wt%)"),
    ("mask_dice", "particle mask Dice"),
)
#: Line style of each method.
STYLES = {
    "sirt": "o-", "hebt-sirt": "s-", "poisson-tv": "^-", "fused": "D-", "sirt-auto": "o--", "hebt-sirt-auto": "s--",
    "poisson-tv-auto": "^--", "fused-auto": "D--",
}  # fmt: skip


def draw(table: ResultsTable, summary: dict[str, Any], path: Path) -> Path:
    """Three panels against the EDS dose divisor (log scale): mean over seeds, min–max shaded."""
    from matplotlib.figure import Figure

    statistics = summary["statistics"]
    fig = Figure(figsize=(11.0, 3.6), layout="constrained")
    axes = fig.subplots(1, len(PANELS))
    divisors = summary["divisors"]
    for ax, (metric, label) in zip(axes, PANELS):
        for method, style in STYLES.items():
            if method not in statistics:
                continue
            rows = [statistics[method][f"{d:g}"][metric] for d in divisors]
            means = [row["mean"] for row in rows]
            ax.plot(divisors, means, style, label=method, markersize=4)
            ax.fill_between(divisors, [row["min"] for row in rows], [row["max"] for row in rows], alpha=0.2)
        if metric == "ssim_quant_Ag" and "sirt_reference_ssim_quant_Ag" in summary:
            ax.axhline(summary["sirt_reference_ssim_quant_Ag"], color="0.4", linestyle=":", linewidth=1)
            ax.annotate(
                "SIRT at full dose",
                (divisors[-1], summary["sirt_reference_ssim_quant_Ag"]),
                fontsize=7,
                ha="right",
                va="bottom",
                color="0.3",
            )
        ax.set_xscale("log")
        ax.set_xlabel("EDS dose divisor (paper's dose ÷ d)")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=8)
    reduction = summary.get("dose_reduction", {})
    text = ", ".join(f"{m}: {'–' if d is None else f'{d:g}×'}" for m, d in reduction.items())
    figures.caption(
        fig,
        f"Core–shell phantom, {summary['seeds']} seeds per dose (shaded: min–max). Dose reduction against SIRT "
        f"at full dose: {text}.",
    )
    return figures.save(fig, path)
