"""`gridpipe demo --payload ctapipe`: a ctapipe analysis with small synthetic event files in local storage.

The inputs are made offline with ctapipe's own data model and writer (gridpipe.payloads.ctapipe.synthetic):
a four-telescope toy array, point-like and diffuse gammas, protons and electrons. The analysis is the one
`create-analysis --payload ctapipe` makes, with one change for the toy array: the event selection asks for
two telescopes instead of four.
"""

from __future__ import annotations

import os
import shutil
import sysconfig
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from gridpipe.analysis.create import CreateRequest
from gridpipe.core.exceptions import UsageError
from gridpipe.service.context import Analysis
from gridpipe.service.demo import SCRATCH, prepare_analysis, store_and_list

CTAPIPE_LFN_DIR = "/vo.cta.in2p3.fr/MC/gridpipe-demo/ctapipe"
TOOLS = ("ctapipe-process", "ctapipe-merge", "ctapipe-compute-irf")


@dataclass(frozen=True)
class CtapipeDemoInputs:
    """The synthetic files of each input list: (kind of particle, first obs id, files, showers per file)."""

    lists: dict[str, tuple[str, int, int, int]] = field(
        default_factory=lambda: {
            "gamma_energy": ("gamma_diffuse", 1001, 1, 3000),
            "gamma_classification": ("gamma_diffuse", 2001, 1, 3000),
            "proton_classification": ("proton", 3001, 1, 12000),
            "gamma_perf": ("gamma", 4001, 1, 2000),
            "gamma_diffuse_perf": ("gamma_diffuse", 5001, 1, 3000),
            "proton_perf": ("proton", 6001, 2, 8000),
            "electron_perf": ("electron", 7001, 1, 2000),
        }
    )
    n_file_per_job: int = 1


def ctapipe_demo_lfn(particle: str, obs_id: int) -> str:
    """LFN of one synthetic event file."""
    return f"{CTAPIPE_LFN_DIR}/{particle}/{particle}_20deg_0deg_run{obs_id}___gridpipe-synthetic.dl1.h5"


def require_ctapipe() -> None:
    """Make ctapipe's tools findable by the demo's jobs, or say how to install them (UsageError)."""
    scripts = sysconfig.get_path("scripts")
    if all(shutil.which(tool) for tool in TOOLS):
        return
    if all(os.access(Path(scripts) / tool, os.X_OK) for tool in TOOLS):
        # gridpipe runs from an environment that is not activated: its jobs find the tools there too
        os.environ["PATH"] = os.pathsep.join([scripts, os.environ.get("PATH", os.defpath)])
        return
    raise UsageError(
        "the ctapipe demo needs ctapipe's tools (ctapipe-process, ...), which are not installed: "
        'pip install "gridpipe[ctapipe]"'
    )


def prepare_ctapipe_demo(
    directory: Path, name: str = "gridpipe_ctapipe_demo", sizes: CtapipeDemoInputs | None = None
) -> tuple[Path, bool]:
    """Create the ctapipe demo analysis and its inputs (once); returns (analysis path, newly created)."""
    require_ctapipe()
    sizes = sizes or CtapipeDemoInputs()
    request = CreateRequest(
        name=name,
        analyses_dir=directory,
        payload="ctapipe",
        n_file_per_job=sizes.n_file_per_job,
        # A toy array with few events: 2 telescopes suffice, and 3 reconstructed-energy bins per decade
        # leave no empty bin inside the range, where ctapipe-optimize-event-selection stops ("Optimal
        # significance curve has internal NaN bins"; it did with 5).
        template_values=(("min_multiplicity", 2), ("reco_energy_bins_per_decade", 3)),
    )

    def refused(an: Analysis) -> str | None:
        if an.grid.payload.name == "ctapipe":
            return None
        return f"the demo analysis at {an.path} runs the {an.grid.payload.name!r} payload; give another folder for the ctapipe demo"

    return prepare_analysis(request, refused, lambda path: _make_inputs(path, sizes))


def _make_inputs(path: Path, sizes: CtapipeDemoInputs) -> None:
    """Simulate and store every input file not stored yet (seeded by their obs id) and write the lists."""
    import logging

    from gridpipe.payloads.ctapipe.synthetic import write_synthetic_file

    logging.getLogger("ctapipe").setLevel(logging.ERROR)  # the writer's notes on unset columns
    scratch = path / SCRATCH
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        with Analysis.open(path) as an:
            for key, (particle, first, count, showers) in sizes.lists.items():
                files = {
                    ctapipe_demo_lfn(particle, obs_id): partial(
                        write_synthetic_file, particle, obs_id, showers
                    )
                    for obs_id in range(first, first + count)
                }
                store_and_list(an, key, files, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
