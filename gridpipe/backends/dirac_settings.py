"""Settings of the `dirac` backend, from configs/grid.yaml (`dirac:`, `grid.banned_sites`) and diracx's environment."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from gridpipe.analysis.config import DiracSection, GridConfig
from gridpipe.analysis.naming import join_lfn
from gridpipe.backends.dirac_client import ConnectionSettings
from gridpipe.backends.dirac_jdl import JdlSettings, derive_job_group, jdl_problem
from gridpipe.core.exceptions import ConfigError, ConfigErrors

GRID_YAML = Path("configs") / "grid.yaml"


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
    section = grid.dirac
    items = [("dirac.output_se", section.output_se, False)] if section.output_se else []
    items += [("dirac.job_group", section.job_group, True)] if section.job_group else []
    items += [("dirac.tags", tag, True) for tag in section.tags]
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
    section = grid.dirac
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

        section = load_model(GridConfig, analysis_path / GRID_YAML).dirac
    return connection_settings(section, analysis_path), timedelta(minutes=section.min_token_validity)
