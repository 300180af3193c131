"""`training`: selected, parametrised images of simulation files, one table per camera type.

The demo's counterpart of protopipe's data_training.py. With an energy model it adds each image's
event-level `reco_energy`, which the gamma/hadron classifier uses as a feature.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from gridpipe.payloads.demo.config import load_analysis
from gridpipe.payloads.demo.estimate import add_reco_energy, find_models
from gridpipe.payloads.demo.h5io import atomic_h5, write_table
from gridpipe.payloads.demo.selection import select_images


def make_training_file(
    config_file: Path,
    outfile: Path,
    infiles: Sequence[Path],
    *,
    regressor_dir: Path | None = None,
    regressor_method: str | None = None,
) -> dict[str, int]:
    """Write `outfile` with tables `/{cam_id}` of selected images; return rows per camera type."""
    settings = load_analysis(config_file)
    regressors = None
    if regressor_dir is not None:
        regressors = find_models(regressor_dir, "regressor", settings.cam_ids, regressor_method)
    images = select_images(infiles, settings)
    if regressors is not None:
        images = add_reco_energy(images, regressors)
    with atomic_h5(outfile, title="gridpipe demo training images") as h5:
        attrs = h5.root._v_attrs
        attrs.mode, attrs.min_tel, attrs.n_input_files = settings.mode, settings.min_tel, len(infiles)
        attrs.estimate_energy = regressors is not None
        for cam, rows in images.items():
            write_table(h5, "/", cam, rows, f"selected images of {cam}")
    return {cam: len(rows) for cam, rows in images.items()}
