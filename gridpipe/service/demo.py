"""`gridpipe demo`: an analysis with the demo payload, synthetic inputs in local storage, ready to run."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from gridpipe.analysis.create import CreateRequest, create_analysis
from gridpipe.analysis.layout import METADATA_FILE
from gridpipe.core.exceptions import UsageError
from gridpipe.core.fsutil import atomic_write_text, held_lock
from gridpipe.service.context import Analysis
from gridpipe.storage.sync import temp_target

DEMO_LFN_DIR = "/vo.cta.in2p3.fr/MC/gridpipe-demo"


@dataclass(frozen=True)
class DemoInputs:
    """Sizes of the synthetic data: files per list and events per file."""

    training_files: int = 12
    perf_files: int = 6
    events: int = 400
    n_file_per_job: int = 4


_LISTS = {  # list key: (particle, first run number, kind)
    "gamma_energy": ("gamma", 1000, "training"),
    "gamma_classification": ("gamma", 2000, "training"),
    "proton_classification": ("proton", 3000, "training"),
    "gamma_perf": ("gamma", 4000, "perf"),
    "proton_perf": ("proton", 5000, "perf"),
    "electron_perf": ("electron", 6000, "perf"),
}


def demo_lfn(particle: str, run: int) -> str:
    """LFN of one synthetic simulation file."""
    return f"{DEMO_LFN_DIR}/{particle}/{particle}_20deg_0deg_run{run}___gridpipe-demo.simtel.h5"


INPUTS_DONE = ".gridpipe/demo-inputs.done"
"""Written once every synthetic input is stored and listed; without it the inputs are (re)made."""


def prepare_demo(
    directory: Path, name: str = "gridpipe_demo", sizes: DemoInputs | None = None, backend: str | None = None
) -> tuple[Path, bool]:
    """Create the demo analysis and its inputs (once; a run stopped half-way through them is completed);
    returns (analysis path, newly created). `backend`: where its jobs run (default local; a demo made
    earlier with another backend is refused)."""
    sizes = sizes or DemoInputs()
    request = CreateRequest(
        name=name,
        analyses_dir=directory,
        payload="demo",
        backend=backend or "local",
        n_file_per_job=sizes.n_file_per_job,
        upload_sites=("DEMO-SE-1", "DEMO-SE-2"),
    )

    def refused(an: Analysis) -> str | None:
        if backend is None or an.grid.backend.name == backend:
            return None
        return (
            f"the demo analysis at {an.path} runs on the {an.grid.backend.name!r} backend; "
            f"give another folder for a demo on {backend!r}"
        )

    return prepare_analysis(request, refused, lambda path: _make_inputs(path, sizes))


def prepare_analysis(
    request: CreateRequest, refused: Callable[[Analysis], str | None], make_inputs: Callable[[Path], None]
) -> tuple[Path, bool]:
    """A demo's analysis, created once, and its inputs, made once (`make_inputs`, under a lock: one maker at
    a time; a run stopped half-way through them completes them); an existing analysis `refused` names a
    problem for is refused (UsageError). Returns (analysis path, newly created)."""
    path = request.analyses_dir.expanduser().resolve() / request.name
    created = not (path / METADATA_FILE).is_file()
    if created:
        create_analysis(request)
    else:
        with Analysis.open(path) as an:
            problem = refused(an)
        if problem:
            raise UsageError(problem)
    if not (path / INPUTS_DONE).is_file():
        with held_lock(path / ".gridpipe" / "demo-inputs.lock", wait=True):
            if not (path / INPUTS_DONE).is_file():
                make_inputs(path)
                atomic_write_text(path / INPUTS_DONE, "synthetic inputs stored and listed\n")
    return path, created


SCRATCH = ".gridpipe/demo-scratch"
"""Where the synthetic inputs are simulated before they are stored."""


def remove_leftovers(an: Analysis) -> list[Path]:
    """Temp files a demo killed while making its inputs left behind: its scratch folder, half-stored
    inputs (`.NAME.XXXX.part` in the local storage) and half-written lists (`.NAME.XXXX.tmp`). Call it
    only while holding the inputs lock (then nobody is writing them). Returns the files removed."""
    removed: list[Path] = []
    scratch = an.path / SCRATCH
    if scratch.is_dir():
        removed += [p for p in scratch.rglob("*") if p.is_file()]
        shutil.rmtree(scratch)
    folders = {(an.path / rel).parent for rel in an.grid.inputs.values()}
    root = getattr(an.storage, "root", None)  # the local storage's folder (a dirac storage has none)
    if isinstance(root, Path):
        folders.add(root / DEMO_LFN_DIR.lstrip("/"))
    for folder in folders:
        for here, dirs, files in os.walk(folder):  # symbolic links to folders are not followed
            for name in files:
                file = Path(here) / name
                if temp_target(name) and file.is_file() and not file.is_symlink():
                    file.unlink(missing_ok=True)
                    removed.append(file)
            dirs.sort()
    return removed


def store_and_list(an: Analysis, key: str, files: dict[str, Callable[..., object]], scratch: Path) -> None:
    """Make and store every file of `files` ({LFN: maker called with `output=` a path}) the storage does not
    hold yet, then write the input list `key`: its comment lines, then the LFNs in order."""
    stored = an.storage.exists(list(files))
    for lfn, make in files.items():
        if lfn not in stored:
            local = scratch / lfn.rsplit("/", 1)[-1]
            make(output=local)
            an.storage.put(local, lfn, move=True)
    listed = an.path / an.grid.inputs[key]
    comments = [line for line in listed.read_text(encoding="utf-8").splitlines() if line.startswith("#")]
    atomic_write_text(listed, "\n".join([*comments, *files]) + "\n")


def _make_inputs(path: Path, sizes: DemoInputs) -> None:
    """Simulate and store every input file not stored yet (they are seeded: the same each time) and
    write the input lists."""
    from gridpipe.payloads.demo.simulate import simulate_file

    with Analysis.open(path) as an:
        remove_leftovers(an)
        scratch = path / SCRATCH
        scratch.mkdir(parents=True)
        try:
            for key, (particle, first, kind) in _LISTS.items():
                count = sizes.training_files if kind == "training" else sizes.perf_files
                files = {
                    demo_lfn(particle, run): partial(simulate_file, particle, run, sizes.events, seed=run)
                    for run in range(first, first + count)
                }
                store_and_list(an, key, files, scratch)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
