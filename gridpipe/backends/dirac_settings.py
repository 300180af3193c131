"""Settings of the `dirac` backend, from configs/grid.yaml (`backend.dirac`, `grid.banned_sites`) and diracx's environment."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from pydantic import Field

from gridpipe.analysis.config import GridConfig, Strict
from gridpipe.analysis.naming import join_lfn
from gridpipe.backends.dirac_client import ConnectionSettings
from gridpipe.backends.dirac_jdl import JdlSettings, derive_job_group, jdl_problem
from gridpipe.core.exceptions import ConfigError, ConfigErrors

GRID_YAML = Path("configs") / "grid.yaml"
BACKEND = "dirac"


class DiracSection(Strict):
    """`backend.dirac` of configs/grid.yaml: connection, job description, submission."""

    url: str = Field("", description="DiracX server URL ('' = diracx's DIRACX_URL).")
    credentials_path: str = Field(
        "",
        description="diracx credentials file ('' = DIRACX_CREDENTIALS_PATH or ~/.cache/diracx/credentials.json); "
        "relative paths are relative to the analysis directory.",
    )
    output_se: str = Field("", description="Storage element for job outputs ('' = DIRAC's default).")
    cpu_time: int = Field(86400, ge=1, description="CPUTime of every job, in seconds.")
    priority: int | None = Field(None, ge=0, le=10, description="Job priority 0-10 (null = DIRAC's default).")
    tags: list[str] = Field(
        default_factory=list, description="Tags jobs require (e.g. a number of processors)."
    )
    job_group: str = Field(
        "",
        max_length=32,
        description="JobGroup of the analysis's jobs ('' = derived from name and grid folder).",
    )
    min_token_validity: int = Field(
        10, ge=0, description="Minutes a token must still be valid for a submission to start (at least 5)."
    )
    submit_parallel: int = Field(4, ge=1, le=32, description="Submission calls of 20 jobs in flight at once.")
    monitor_url: str = Field(
        "", description="DIRAC web monitor URL for job links; '{job_id}' marks where the id goes ('' = none)."
    )
    timeout: float = Field(60.0, gt=0, description="Seconds to wait for the server on each call.")
    retries: int = Field(
        4, ge=0, le=20, description="Retries of status, lookup and kill calls after network faults."
    )
    backoff: float = Field(1.0, ge=0, description="Seconds before the first retry (doubled each time).")
    backoff_max: float = Field(30.0, ge=0, description="Longest wait between two retries, in seconds.")


@dataclass(frozen=True)
class DiracSettings:
    """Everything the backend needs, resolved once."""

    connection: ConnectionSettings
    jdl: JdlSettings
    min_token_validity: timedelta = timedelta(minutes=10)
    submit_parallel: int = 4
    monitor_url: str = ""


def connection_settings(section: DiracSection, analysis_path: Path | None) -> ConnectionSettings:
    """Server and credentials overrides (a relative credentials path is relative to the analysis)."""
    creds: Path | None = None
    if section.credentials_path:
        creds = Path(section.credentials_path).expanduser()
        if not creds.is_absolute() and analysis_path is not None:
            creds = analysis_path / creds
    return ConnectionSettings(
        url=section.url,
        credentials_path=creds,
        timeout=section.timeout,
        retries=section.retries,
        backoff=section.backoff,
        backoff_max=section.backoff_max,
    )


def _check_values(grid: GridConfig, file: Path) -> None:
    """Values DIRAC's JDL cannot carry are configuration errors (found before any job is built)."""
    section = grid.backend.settings_for(BACKEND, DiracSection)
    items = [("backend.dirac.output_se", section.output_se, False)] if section.output_se else []
    items += [("backend.dirac.job_group", section.job_group, True)] if section.job_group else []
    items += [("backend.dirac.tags", tag, True) for tag in section.tags]
    items += [("grid.banned_sites", site, True) for site in grid.grid.banned_sites]
    errors = [
        ConfigError(file, f"{value!r}: {problem}", key=key)
        for key, value, item in items
        if (problem := jdl_problem(value, list_item=item))
    ]
    if errors:
        raise errors[0] if len(errors) == 1 else ConfigErrors(errors)


def dirac_settings(grid: GridConfig, analysis_path: Path) -> DiracSettings:
    """The backend's settings for the analysis at `analysis_path`."""
    _check_values(grid, analysis_path / GRID_YAML)
    section = grid.backend.settings_for(BACKEND, DiracSection)
    grid_dir = join_lfn(grid.grid.home, grid.grid.path, grid.analysis_name)
    jdl = JdlSettings(
        job_group=section.job_group or derive_job_group(grid.analysis_name, grid_dir),
        grid_home=grid.grid.home,
        output_se=section.output_se,
        cpu_time=section.cpu_time,
        priority=section.priority,
        tags=tuple(section.tags),
        banned_sites=tuple(grid.grid.banned_sites),
    )
    return DiracSettings(
        connection=connection_settings(section, analysis_path),
        jdl=jdl,
        min_token_validity=timedelta(minutes=section.min_token_validity),
        submit_parallel=section.submit_parallel,
        monitor_url=section.monitor_url,
    )


def credentials_settings(analysis_path: Path | None) -> tuple[ConnectionSettings, timedelta]:
    """Connection and minimum token validity of an analysis (None: diracx's own settings and defaults)."""
    section = DiracSection()
    if analysis_path is not None:
        from gridpipe.analysis.configio import load_model

        section = load_model(GridConfig, analysis_path / GRID_YAML).backend.settings_for(
            BACKEND, DiracSection
        )
    return connection_settings(section, analysis_path), timedelta(minutes=section.min_token_validity)
