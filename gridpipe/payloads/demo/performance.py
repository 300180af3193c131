"""`performance`: gammaness cut, DL3-like event lists and performance curves from merged DL2 files.

Outputs in the output directory (fixed names):
  DL3_events.h5     `/events/{particle}`: DL2 rows of events with gammaness >= Analysis.min_gammaness
  performance.h5    `/performance/curves`: per energy bin (TeV) energy bias and resolution of gammas
                    (true-energy bins, events passing the cut), gamma efficiency (true-energy bins) and
                    proton/electron rejection (reconstructed-energy bins); NaN where a bin is empty
  performance.png   energy resolution and gamma efficiency versus energy
No IRFs or sensitivity are computed (no spectral reweighting; Analysis.obs_time is not used).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gridpipe.payloads.demo.config import PerformanceSettings, load_performance
from gridpipe.payloads.demo.dl2 import DL2_GROUP, DL2_TABLE
from gridpipe.payloads.demo.h5io import InputFileError, atomic_h5, open_input, read_table, write_table
from gridpipe.payloads.demo.schema import CURVES_DTYPE
from gridpipe.payloads.demo.toymodel import PARTICLE_IDS

DL3_FILE, CURVES_FILE, PLOT_FILE = "DL3_events.h5", "performance.h5", "performance.png"


def read_dl2(indir: Path, settings: PerformanceSettings) -> dict[str, np.ndarray]:
    """The DL2 events of every configured particle, checked to hold that particle only.

    A merged file is looked for in `indir` itself, then in `indir/<particle>/` (gridpipe's data/DL2 layout).
    """
    events = {}
    for particle in settings.particles:
        name = settings.template.format(particle)
        path = indir / name if (indir / name).exists() else indir / particle / name
        with open_input(path) as h5:
            rows = read_table(h5, f"{DL2_GROUP}/{DL2_TABLE}")
        wrong = set(np.unique(rows["true_particle_id"]).tolist()) - {PARTICLE_IDS[particle]}
        if wrong:
            raise InputFileError(
                f"{path}: holds particle ids {sorted(wrong)}, not only {particle}; check the file"
            )
        events[particle] = rows
    return events


def _fraction_passing(values: np.ndarray, passing: np.ndarray, edges: np.ndarray) -> np.ndarray:
    idx = np.digitize(values, edges) - 1
    out = np.full(len(edges) - 1, np.nan)
    for b in range(len(out)):
        in_bin = idx == b
        if in_bin.any():
            out[b] = passing[in_bin].mean()
    return out


def _resolution(gammas: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median relative energy error (bias) and 68% containment of its spread, per true-energy bin."""
    rel = (gammas["reco_energy"] - gammas["true_energy"]) / gammas["true_energy"]
    idx = np.digitize(gammas["true_energy"], edges) - 1
    bias, resolution = np.full(len(edges) - 1, np.nan), np.full(len(edges) - 1, np.nan)
    for b in range(len(bias)):
        values = rel[idx == b]
        if len(values):
            bias[b] = np.median(values)
            resolution[b] = np.percentile(np.abs(values - bias[b]), 68.27)
    return bias, resolution


def curves(events: dict[str, np.ndarray], settings: PerformanceSettings) -> np.ndarray:
    """Performance per energy bin (see the module docstring)."""
    edges = np.asarray(settings.energy_edges_tev)
    cut = settings.min_gammaness
    rows = np.zeros(len(edges) - 1, dtype=CURVES_DTYPE)
    rows["energy_min"], rows["energy_max"] = edges[:-1], edges[1:]
    rows["energy_center"] = np.sqrt(edges[:-1] * edges[1:])
    gammas = events["gamma"]
    rows["n_gamma"] = np.histogram(gammas["true_energy"], edges)[0]
    selected = gammas[gammas["gammaness"] >= cut]
    rows["energy_bias"], rows["energy_resolution"] = _resolution(selected, edges)
    rows["gamma_efficiency"] = _fraction_passing(gammas["true_energy"], gammas["gammaness"] >= cut, edges)
    for particle in ("proton", "electron"):
        column = f"{particle}_rejection"
        if particle not in events:
            rows[column] = np.nan
            continue
        bkg = events[particle]
        rows[column] = 1.0 - _fraction_passing(bkg["reco_energy"], bkg["gammaness"] >= cut, edges)
    return rows


def make_performance(config_file: Path, indir: Path, outdir: Path) -> dict[str, Path]:
    """Read merged DL2 files from `indir`, write DL3 events, curves and the plot to `outdir`."""
    settings = load_performance(config_file)
    events = read_dl2(indir, settings)
    table = curves(events, settings)
    outdir.mkdir(parents=True, exist_ok=True)
    with atomic_h5(outdir / DL3_FILE, title="gridpipe demo DL3-like events") as h5:
        h5.root._v_attrs.min_gammaness = settings.min_gammaness
        for particle, rows in events.items():
            write_table(h5, "/events", particle, rows[rows["gammaness"] >= settings.min_gammaness], particle)
    with atomic_h5(outdir / CURVES_FILE, title="gridpipe demo performance curves") as h5:
        h5.root._v_attrs.min_gammaness = settings.min_gammaness
        h5.root._v_attrs.particles = ",".join(settings.particles)
        write_table(h5, "/performance", "curves", table, "performance per energy bin (TeV)")
    from gridpipe.payloads.demo.plot import write_plot  # matplotlib only for this step

    write_plot(table, settings.min_gammaness, outdir / PLOT_FILE)
    return {"dl3": outdir / DL3_FILE, "curves": outdir / CURVES_FILE, "plot": outdir / PLOT_FILE}
