"""A one-page plot of ctapipe-compute-irf's output: effective area, energy bias and resolution, background
rate and, when the benchmarks hold it, the sensitivity (per field-of-view offset bin)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np


def _centers(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return np.sqrt(lo * hi)


def _hdu(hdus: Any, name: str) -> Any | None:
    return hdus[name] if name in hdus else None


def _per_offset(ax: Any, hdu: Any, column: str, energy: str = "ENERG", positive: bool = True) -> int:
    """Plot `column` (offset x energy) against energy, one line per offset bin (without the empty bins of
    a log scale when `positive`); lines drawn."""
    row = hdu.data[0]
    e = _centers(row[f"{energy}_LO"], row[f"{energy}_HI"])
    values = np.atleast_2d(row[column])
    drawn = 0
    for k, (lo, hi) in enumerate(zip(row["THETA_LO"], row["THETA_HI"], strict=True)):
        y = np.array(values[k] if values.shape[0] == len(row["THETA_LO"]) else values[..., k], dtype=float)
        if positive:
            y[~(y > 0)] = np.nan
        if np.isfinite(y).any() and np.nanmax(np.abs(y)) > 0:
            ax.plot(e, y, marker=".", label=f"{lo:.1f}-{hi:.1f} deg")
            drawn += 1
    ax.set_xscale("log")
    ax.set_xlabel("energy / TeV")
    return drawn


def plot_irf(irf: Path, benchmarks: Path | None, output: Path) -> list[str]:
    """Write the plot to `output` (PNG, atomically); returns the panels drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from astropy.io import fits

    fig, axes = plt.subplots(2, 2, figsize=(11, 8.5))
    drawn: list[str] = []
    with fits.open(irf) as hdus:
        aeff = _hdu(hdus, "EFFECTIVE AREA")
        if aeff is not None and _per_offset(axes[0, 0], aeff, "EFFAREA"):
            axes[0, 0].set_yscale("log")
            axes[0, 0].set_ylabel("effective area / m²")
            axes[0, 0].set_title("Effective area (gammas, after cuts)")
            axes[0, 0].legend(fontsize=7)
            drawn.append("effective area")
        bkg = _hdu(hdus, "BACKGROUND")
        if bkg is not None and _per_offset(axes[1, 0], bkg, "BKG"):
            axes[1, 0].set_yscale("log")
            axes[1, 0].set_ylabel("background rate / (MeV⁻¹ s⁻¹ sr⁻¹)")
            axes[1, 0].set_title("Background rate (protons + electrons)")
            axes[1, 0].legend(fontsize=7)
            drawn.append("background rate")
    if benchmarks is not None and benchmarks.is_file():
        with fits.open(benchmarks) as hdus:
            bias = _hdu(hdus, "ENERGY BIAS RESOLUTION")
            if bias is not None:
                ax = axes[0, 1]
                _per_offset(ax, bias, "BIAS", positive=False)
                n = len(ax.lines)
                _per_offset(ax, bias, "RESOLUTION", positive=False)
                for line in ax.lines[n:]:
                    line.set_linestyle("--")
                ax.axhline(0, color="grey", lw=0.5)
                ax.set_ylabel("bias (solid), resolution (dashed)")
                ax.set_title("Energy bias and resolution")
                drawn.append("energy bias and resolution")
            sens = _hdu(hdus, "SENSITIVITY")
            if sens is not None and _per_offset(axes[1, 1], sens, "ENERGY_FLUX_SENSITIVITY", "ENERG"):
                axes[1, 1].set_yscale("log")
                axes[1, 1].set_ylabel("E² flux sensitivity / (TeV cm⁻² s⁻¹)")
                axes[1, 1].set_title("Point-source sensitivity")
                drawn.append("sensitivity")
    for ax in axes.flat:
        if not ax.lines:
            ax.text(0.5, 0.5, "not computed", ha="center", va="center", transform=ax.transAxes)
    fig.suptitle(f"ctapipe IRF: {irf.name}")
    fig.tight_layout()
    tmp = output.with_name(f".{output.name}.part")
    fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
    os.replace(tmp, output)
    return drawn
