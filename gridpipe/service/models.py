"""Upload model files of local stages to the grid, replicated to every upload site, and verified."""

from __future__ import annotations

from dataclasses import dataclass

from gridpipe.analysis.naming import join_lfn
from gridpipe.analysis.stage import Stage
from gridpipe.core.exceptions import NoModelFilesError, StorageError, UsageError
from gridpipe.service.context import Analysis
from gridpipe.storage.checksum import adler32_file


@dataclass(frozen=True)
class Uploaded:
    """One uploaded model file."""

    lfn: str
    size: int
    adler32: str
    replicas: tuple[str, ...]


def upload_stage_outputs(an: Analysis, stage: Stage) -> list[Uploaded]:
    """Put every file of the stage's outdir under `{grid analysis}/{outdir}/`, verify, record."""
    folder = an.path / (stage.outdir or stage.name)
    files = (
        sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
        if folder.is_dir()
        else []
    )
    if not files:
        raise NoModelFilesError(folder)
    sites = tuple(an.grid.grid.upload_sites)
    done: list[Uploaded] = []
    for path in files:
        lfn = join_lfn(an.grid_dir, stage.outdir or stage.name, path.name)
        info = an.storage.put(path, lfn, replicas=sites)
        local_sum = adler32_file(path)
        if info.adler32 != local_sum or info.size != path.stat().st_size:
            raise StorageError(
                f"{lfn}: stored copy does not match {path} (adler32 {info.adler32} vs {local_sum})"
            )
        replicas = tuple(an.storage.replicas(lfn))
        missing = [site for site in sites if site not in replicas]
        if missing:
            raise StorageError(
                f"{lfn}: not replicated to {', '.join(missing)}; check the upload_sites in grid.yaml"
            )
        done.append(Uploaded(lfn, info.size, info.adler32, replicas))
    an.store.add_files(None, "model", [(u.lfn, u.size, u.adler32) for u in done])
    return done


def model_stages(an: Analysis, names: list[str] | None = None) -> list[Stage]:
    """Local stages that upload their outputs (all, or those whose outdir or name is given)."""
    stages = [s for s in an.workflow.stages if s.kind == "local" and s.upload]
    if not names:
        return stages
    chosen = [
        s
        for s in stages
        if s.name in names or (s.outdir or "") in names or (s.outdir or "").rsplit("/", 1)[-1] in names
    ]
    if len(chosen) < len(set(names)):
        known = ", ".join(f"{s.name} ({s.outdir})" for s in stages)
        raise UsageError(f"unknown model folder in {', '.join(names)}; known: {known}")
    return chosen
