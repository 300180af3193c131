"""`dl2`: reconstructed energy and gammaness per event of simulation files, in one `/dl2/events` table."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gridpipe.core.exceptions import UsageError
from gridpipe.payloads.demo.config import load_analysis
from gridpipe.payloads.demo.estimate import add_reco_energy, event_column, find_models, gammaness
from gridpipe.payloads.demo.h5io import atomic_h5, write_table
from gridpipe.payloads.demo.schema import DL2_DTYPE
from gridpipe.payloads.demo.selection import Images, select_images

DL2_GROUP, DL2_TABLE = "/dl2", "events"


def dl2_events(images: Images, regressors: dict, classifiers: dict) -> np.ndarray:
    """One DL2 row per event with at least min_tel selected images (sorted by obs_id, event_id)."""
    with_energy = add_reco_energy(images, regressors)
    keys, score = gammaness(with_energy, classifiers)
    rows = np.zeros(len(keys), dtype=DL2_DTYPE)
    rows["obs_id"], rows["event_id"], rows["gammaness"] = keys["obs_id"], keys["event_id"], score
    for name in ("true_particle_id", "true_energy", "reco_energy", "n_tel"):
        rows[name] = event_column(with_energy, name)
    return rows


def make_dl2_file(
    config_file: Path,
    outfile: Path,
    infiles: Sequence[Path],
    regressor_dir: Path,
    classifier_dir: Path,
    *,
    regressor_method: str | None = None,
    classifier_method: str | None = None,
) -> int:
    """Write `outfile` with the DL2 table of all `infiles`; return its number of events."""
    settings = load_analysis(config_file)
    regressors = find_models(regressor_dir, "regressor", settings.cam_ids, regressor_method)
    classifiers = find_models(classifier_dir, "classifier", settings.cam_ids, classifier_method)
    if not infiles:
        raise UsageError("--infile-list needs at least one simulation file")
    rows = dl2_events(select_images(infiles, settings), regressors, classifiers)
    with atomic_h5(outfile, title="gridpipe demo DL2 events") as h5:
        h5.root._v_attrs.mode = settings.mode
        write_table(h5, DL2_GROUP, DL2_TABLE, rows, "reconstructed events")
    return len(rows)
