"""Pydantic models of the config files gridpipe reads (grid.yaml, analysis.yaml, model configs)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, Field, model_validator
from pydantic_core import PydanticCustomError

from gridpipe.analysis.legacy import migrate_grid
from gridpipe.analysis.naming import analysis_name_problem, lfn_problem, relative_path_problem
from gridpipe.analysis.sections import NoSettings, PluginSection, Strict
from gridpipe.core.plugins import Group, PluginNotFoundError, available

__all__ = ["NoSettings", "PluginSection", "Strict"]

MODES = ("tail", "wave")


def _check(problem_of: Any) -> Any:
    def check(value: str) -> str:
        problem = problem_of(value)
        if problem:
            raise ValueError(problem)
        return value

    return AfterValidator(check)


def installed_in(group: Group) -> Any:
    """A validator: the value names an installed plugin of `group` (the error lists the installed ones)."""

    def check(name: str) -> str:
        names = available(group)
        if name not in names:
            raise PydanticCustomError("plugin_not_installed", PluginNotFoundError(group, name, names).detail)
        return name

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


class BackendSection(PluginSection):
    """Where jobs run: `name` is an installed backend; `backend.<name>` holds that backend's settings."""

    group: ClassVar[Group] = Group.backends
    name: str = Field(description="Backend name (an installed `gridpipe.backends` plugin).")
    submit_batch: int = Field(0, ge=0, description="Most jobs per submit call (0: the backend's own limit).")


class StorageSection(PluginSection):
    """Where files live: `name` is an installed storage; `storage.<name>` holds that storage's settings."""

    group: ClassVar[Group] = Group.storages
    name: str = Field(description="Storage name (an installed `gridpipe.storages` plugin).")


class PayloadSection(Strict):
    """What jobs execute."""

    name: Annotated[str, installed_in(Group.payloads)] = Field(
        description="Payload name (an installed `gridpipe.payloads` plugin)."
    )
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


class GridConfig(Strict):
    """configs/grid.yaml."""

    analysis_name: AnalysisName = Field(description="Name of the analysis (its folder name).")
    grid: GridSection
    backend: BackendSection
    storage: StorageSection
    payload: PayloadSection
    jobs: JobsSection = Field(default_factory=JobsSection)
    inputs: dict[str, RelPath] = Field(
        default_factory=dict, description="Input file lists by key, relative to the analysis directory."
    )

    @model_validator(mode="before")
    @classmethod
    def _old_places(cls, data: Any) -> Any:
        """Keys of older grid.yaml files (`dirac:`, `backend.max_workers`, ...) are read from where they were."""
        return migrate_grid(data)[0] if isinstance(data, dict) else data


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
