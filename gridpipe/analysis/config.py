"""Pydantic models of the config files gridpipe reads (grid.yaml, analysis.yaml, model configs)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from gridpipe.analysis.naming import analysis_name_problem, lfn_problem, relative_path_problem

BACKENDS = ("local", "dirac", "slurm", "htcondor")
STORAGES = ("local", "dirac")
PAYLOADS = ("demo", "protopipe", "ctapipe")
MODES = ("tail", "wave")


class Strict(BaseModel):
    """Base of every config section: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _check(problem_of: Any) -> Any:
    def check(value: str) -> str:
        problem = problem_of(value)
        if problem:
            raise ValueError(problem)
        return value

    return AfterValidator(check)


AnalysisName = Annotated[str, _check(analysis_name_problem)]
LFN = Annotated[str, _check(lfn_problem)]
RelPath = Annotated[str, _check(relative_path_problem)]
GridPath = Annotated[str, _check(lambda v: None if v == "" else relative_path_problem(v))]


class GridSection(Strict):
    """Where the analysis lives on the grid."""

    home: LFN = Field(
        description="Grid home of the user, an LFN directory such as /vo.cta.in2p3.fr/user/j/jdoe."
    )
    path: GridPath = Field(
        description="Path from the grid home to the folder holding analyses ('' for the home)."
    )
    user_name: str = Field(min_length=1, description="Grid user name (last component of the grid home).")
    banned_sites: list[str] = Field(default_factory=list, description="Sites jobs must not run at.")
    upload_sites: list[str] = Field(
        default_factory=list, description="Storage elements models are replicated to."
    )


class BackendSection(Strict):
    """Where jobs run."""

    name: Literal["local", "dirac", "slurm", "htcondor"] = Field(description="Backend name.")
    max_workers: int = Field(0, ge=0, description="local backend: processes at once (0 = number of cores).")
    submit_batch: int = Field(0, ge=0, description="Most jobs per submit call (0: the backend's own limit).")


class StorageSection(Strict):
    """Where files live."""

    name: Literal["local", "dirac"] = Field(description="Storage name.")
    local_root: str = Field(description="local storage: absolute directory playing the storage element.")
    dirac_se: str = Field(
        "", description="dirac storage: storage element files are put to ('' = first upload site)."
    )
    dirac_command_timeout: float = Field(
        900.0, gt=0, description="dirac storage: seconds one DIRAC data-management command may run."
    )
    dirac_bin_dir: str = Field(
        "", description="dirac storage: folder holding DIRAC's dirac-dms-* commands ('' = found on PATH)."
    )


class PayloadSection(Strict):
    """What jobs execute."""

    name: Literal["demo", "protopipe", "ctapipe"] = Field(description="Payload name.")
    mode: Literal["tail", "wave"] = Field("tail", description="Image cleaning mode, part of output names.")


class JobsSection(Strict):
    """How input lists become jobs and how many run."""

    n_file_per_job: int = Field(10, ge=1, le=10000, description="Input files per job.")
    n_jobs_max: int = Field(-1, ge=-1, description="Most jobs one submit creates (-1: no limit).")
    max_active: int = Field(
        0,
        ge=0,
        description="Most active jobs during `run` (0: the backend's default: local 1000, dirac 500).",
    )
    max_attempts: int = Field(3, ge=1, le=100, description="Submissions of a job before it fails for good.")


class DiracSection(Strict):
    """The `dirac` backend (DIRAC through diracx-client): connection, job description, submission."""

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


class GridConfig(Strict):
    """configs/grid.yaml."""

    analysis_name: AnalysisName = Field(description="Name of the analysis (its folder name).")
    grid: GridSection
    backend: BackendSection
    storage: StorageSection
    payload: PayloadSection
    jobs: JobsSection = Field(default_factory=JobsSection)
    dirac: DiracSection = Field(default_factory=DiracSection)
    inputs: dict[str, RelPath] = Field(
        default_factory=dict, description="Input file lists by key, relative to the analysis directory."
    )


class GeneralSection(Strict):
    """The part of analysis.yaml gridpipe reads."""

    config_name: str = Field(description="Name of this analysis configuration.")
    site: Literal["north", "south"] = Field(description="CTA site.")
    array: str = Field(description="Array layout name.")
    cam_id_list: list[str] = Field(min_length=1, description="Camera types used.")
    mode: Literal["tail", "wave"] = Field("tail", description="Image cleaning mode.")


class AnalysisConfig(Strict):
    """configs/analysis.yaml (protopipe layout): `General` is gridpipe's, the rest goes to the payload."""

    General: GeneralSection
    ImageCleaning: dict[str, Any] = Field(default_factory=dict)
    ImageSelection: dict[str, Any] = Field(default_factory=dict)
    Reconstruction: dict[str, Any] = Field(default_factory=dict)
    SigmaHillas: dict[str, Any] = Field(default_factory=dict)


class ModelGeneral(Strict):
    """Where a model's training data and output are."""

    model_type: Literal["regressor", "classifier"]
    data_dir: str
    data_sig_file: str
    data_bkg_file: str | None = None
    outdir: str
    cam_id_list: list[str] = Field(min_length=1)


class ModelConfig(Strict):
    """configs/<Method>.yaml: one estimator."""

    General: ModelGeneral
    Split: dict[str, Any] = Field(default_factory=dict)
    Method: dict[str, Any]
    FeatureList: list[str] = Field(min_length=1)
    SigFiducialCuts: list[str] = Field(default_factory=list)
    Diagnostic: dict[str, Any] = Field(default_factory=dict)


class PerformanceGeneral(Strict):
    """Where DL2 inputs and DL3 outputs are."""

    indir: str
    outdir: str
    template_input_file: str
    particles: list[str] = Field(min_length=1)


class PerformanceConfig(Strict):
    """configs/performance.yaml."""

    General: PerformanceGeneral
    Analysis: dict[str, Any] = Field(default_factory=dict)


CONFIG_MODELS: dict[str, type[BaseModel]] = {
    "grid.yaml": GridConfig,
    "analysis.yaml": AnalysisConfig,
    "RandomForestRegressor.yaml": ModelConfig,
    "AdaBoostRegressor.yaml": ModelConfig,
    "RandomForestClassifier.yaml": ModelConfig,
    "performance.yaml": PerformanceConfig,
}
"""Config file names below configs/ and the model that validates each."""
