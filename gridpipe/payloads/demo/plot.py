"""The one figure of the demo: energy resolution and gamma efficiency versus energy (matplotlib, Agg)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from gridpipe.core.fsutil import atomic_write_bytes
from gridpipe.payloads.demo.h5io import FILE_MODE


def write_plot(curves: np.ndarray, min_gammaness: float, path: Path) -> None:
    """Draw `curves` (rows of CURVES_DTYPE) into the PNG `path`, atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4), dpi=80)
    canvas = FigureCanvasAgg(fig)
    energy = curves["energy_center"]
    left, right = fig.subplots(1, 2)
    left.plot(energy, curves["energy_resolution"], "o-", label="resolution (68%)")
    left.plot(energy, curves["energy_bias"], "s--", label="bias (median)")
    left.set(xscale="log", xlabel="true energy [TeV]", ylabel="relative energy error", title="Energy")
    left.axhline(0.0, color="grey", lw=0.5)
    right.plot(energy, curves["gamma_efficiency"], "o-", label="gamma efficiency")
    for particle in ("proton", "electron"):
        values = curves[f"{particle}_rejection"]
        if np.isfinite(values).any():
            right.plot(energy, values, "s--", label=f"{particle} rejection")
    right.set(xscale="log", xlabel="energy [TeV]", ylim=(0.0, 1.05), title=f"gammaness >= {min_gammaness:g}")
    for ax in (left, right):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    buffer = io.BytesIO()
    canvas.print_png(buffer)
    atomic_write_bytes(path, buffer.getvalue(), mode=FILE_MODE)
