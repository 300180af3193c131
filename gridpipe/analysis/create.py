"""`create-analysis`: build the analysis tree in a staging folder, then move it into place.

A new analysis appears whole by one rename. With `overwrite`, rendered files (configs, scripts,
metadata) are replaced one by one atomically; input lists, data and models are never touched.
"""

from __future__ import annotations

import getpass
import os
import re
import shutil
import sysconfig
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gridpipe.analysis.config import CONFIG_MODELS, MODES
from gridpipe.analysis.configio import load_model, read_yaml
from gridpipe.analysis.layout import CREATE_LOG, METADATA_FILE, STATE_DIR, WORKFLOW_FILE
from gridpipe.analysis.naming import join_lfn, lfn_problem, relative_path_problem, validate_analysis_name
from gridpipe.analysis.render import environment, overridden_templates, render, settings_block, yaml_document
from gridpipe.analysis.skeleton import WorkflowSpec, load_workflow
from gridpipe.core.exceptions import AnalysisExistsError, ConfigError, ConfigErrors, UsageError
from gridpipe.core.plugins import Group, available, load
from gridpipe.core.resources import skeleton_dir
from gridpipe.core.timeutil import utcnow
from gridpipe.core.version import __version__


def default_grid_home() -> str:
    """`/vo.cta.in2p3.fr/user/<initial>/<login>` for the current login."""
    login = re.sub(r"[^a-z0-9._-]", "", getpass.getuser().lower()) or "user"
    return f"/vo.cta.in2p3.fr/user/{login[0]}/{login}"


def read_metadata(path: Path) -> dict[str, Any]:
    """The analysis_metadata.yaml of the analysis at `path`, or a ConfigError naming the problem."""
    data, _ = read_yaml(path / METADATA_FILE)
    if not isinstance(data, dict):
        raise ConfigError(path / METADATA_FILE, "must hold a mapping of keys to values; fix it", line=1)
    return data


@dataclass(frozen=True)
class CreateRequest:
    """Everything `create-analysis` needs; the CLI fills it from options."""

    name: str
    analyses_dir: Path
    grid_home: str = field(default_factory=default_grid_home)
    grid_path: str = "cta_analyses"
    backend: str = "local"
    storage: str = "local"
    payload: str = "demo"
    mode: str = "tail"
    workflow: Path | None = None
    templates: Path | None = None
    """A folder of templates replacing gridpipe's own of the same name (e.g. `configs/grid.yaml.j2`)."""
    overwrite: bool = False
    n_file_per_job: int = 10
    n_jobs_max: int = -1
    banned_sites: tuple[str, ...] = ()
    upload_sites: tuple[str, ...] = ()
    template_values: tuple[tuple[str, object], ...] = ()
    """Values for the templates that replace the payload's defaults (e.g. the demo's `min_multiplicity`)."""


@dataclass
class CreateResult:
    """What was made: the analysis path, the files written and the files kept as they were."""

    path: Path
    created: bool
    written: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    overridden: list[str] = field(default_factory=list)
    """Templates taken from the request's `templates` folder instead of gridpipe's own."""
    inputs: list[str] = field(default_factory=list)
    """The input lists the workflow reads (relative paths), for the user to fill."""
    backed_up: dict[str, str] = field(default_factory=dict)
    """Files an overwrite replaced although they differed from the new version: {file: its backup copy}."""


def _validate(req: CreateRequest) -> None:
    validate_analysis_name(req.name)
    if req.templates is not None and not req.templates.is_dir():
        raise UsageError(f"--templates {req.templates}: not a folder; give the folder holding your templates")
    problem = lfn_problem(req.grid_home)
    if problem:
        raise UsageError(f"--grid-home {req.grid_home!r}: {problem}")
    if req.grid_path and relative_path_problem(req.grid_path):
        raise UsageError(f"--grid-path-from-home {req.grid_path!r}: {relative_path_problem(req.grid_path)}")
    for option, value, allowed in (
        ("--backend", req.backend, available(Group.backends)),
        ("--storage", req.storage, available(Group.storages)),
        ("--payload", req.payload, available(Group.payloads)),
        ("--mode", req.mode, MODES),
    ):
        if value not in allowed:
            raise UsageError(f"{option} {value!r} is not one of: {', '.join(allowed)}")
    for group, name in ((Group.backends, req.backend), (Group.storages, req.storage)):
        load(group, name)  # a plugin whose extra is missing says what to install, before anything is made
    if req.n_file_per_job < 1:
        raise UsageError("--n-file-per-job must be at least 1")
    if req.n_jobs_max < -1 or req.n_jobs_max == 0:
        raise UsageError("--n-jobs-max must be a positive number, or -1 for no limit")


def _context(req: CreateRequest, path: Path, spec: WorkflowSpec) -> dict[str, Any]:
    return {
        **_payload(req.payload).template_values(),
        **dict(req.template_values),
        "name": req.name,
        "analysis_path": str(path),
        "analyses_dir": str(path.parent),
        "grid_home": req.grid_home,
        "grid_path": req.grid_path,
        "user_name": req.grid_home.rstrip("/").rsplit("/", 1)[-1],
        "backend": req.backend,
        "storage": req.storage,
        "payload": req.payload,
        "mode": req.mode,
        "n_file_per_job": req.n_file_per_job,
        "n_jobs_max": req.n_jobs_max,
        "banned_sites": list(req.banned_sites),
        "upload_sites": list(req.upload_sites),
        "backends": available(Group.backends),
        "storages": available(Group.storages),
        "payloads": available(Group.payloads),
        "backend_section": _section(Group.backends, req.backend, path),
        "storage_section": _section(Group.storages, req.storage, path),
        "inputs": dict(spec.inputs),
        "downloads": [{"data_type": dt, "particles": ps} for dt, ps in spec.downloads()],
        "version": __version__,
        # the console script of the environment gridpipe is installed in: the same whichever name
        # (python, python3, python3.12) the interpreter that runs gridpipe was started by
        "gridpipe_script": str(Path(sysconfig.get_path("scripts")) / "gridpipe"),
    }


def _payload(name: str) -> Any:
    """The payload plugin `name` (a `gridpipe.payloads.contract.Payload`): its default workflow and the
    values its templates use (loaded through the plugin loader, as analysis may not import payloads)."""
    return load(Group.payloads, name)()


def _section(group: Group, name: str, path: Path) -> str:
    """The plugin's own section of grid.yaml, rendered from its settings for a new analysis."""
    settings = load(group, name).new_settings(path)
    return settings_block(group.kind, name, settings)


def _metadata(req: CreateRequest, path: Path, previous: dict[str, Any] | None) -> str:
    now = utcnow().isoformat()
    params = {
        k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v)
        for k, v in asdict(req).items()
        if k != "template_values"
    }
    if req.template_values:
        params["template_values"] = dict(req.template_values)
    data = {
        "name": req.name,
        "analyses_dir": str(path.parent),
        "analysis_path": str(path),
        "grid_home": req.grid_home,
        "grid_path": req.grid_path,
        "grid_analysis_dir": join_lfn(req.grid_home, req.grid_path, req.name),
        "gridpipe_version": __version__,
        "created": (previous or {}).get("created", now),
        "updated": now,
        "parameters": params,
    }
    return yaml_document(data)


@contextmanager
def _staging(parent: Path, name: str) -> Iterator[Path]:
    stage = Path(tempfile.mkdtemp(prefix=f".{name}.creating-", dir=parent))
    umask = os.umask(0)
    os.umask(umask)
    stage.chmod(0o777 & ~umask)
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _build(
    stage: Path,
    req: CreateRequest,
    path: Path,
    spec: WorkflowSpec,
    spec_text: str,
    previous: dict[str, Any] | None,
) -> tuple[list[str], list[str]]:
    """Write the whole tree into `stage`; return (replaceable files, create-if-missing files)."""
    env = environment([req.templates] if req.templates else [])
    context = _context(req, path, spec)
    replace: list[str] = [METADATA_FILE, WORKFLOW_FILE]
    keep: list[str] = []
    for directory in spec.tree.directories:
        (stage / directory).mkdir(parents=True, exist_ok=True)
    for item in spec.tree.files:
        target = stage / item.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(render(env, item.template, context), encoding="utf-8")
        target.chmod(0o755 if item.executable else 0o644)
        replace.append(item.path)
    for key, rel in spec.inputs.items():
        target = stage / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(render(env, "lists/input.list.j2", {**context, "list_key": key}), encoding="utf-8")
        keep.append(rel)
    (stage / WORKFLOW_FILE).parent.mkdir(parents=True, exist_ok=True)
    (stage / WORKFLOW_FILE).write_text(spec_text, encoding="utf-8")
    (stage / METADATA_FILE).write_text(_metadata(req, path, previous), encoding="utf-8")
    (stage / STATE_DIR).mkdir(exist_ok=True)
    _self_check(stage, path)
    return replace, keep


def _self_check(stage: Path, path: Path) -> None:
    """Every rendered config must load with its model (a template bug must never reach a user)."""
    for name, model in CONFIG_MODELS.items():
        config = stage / "configs" / name
        if not config.exists():
            continue
        try:
            load_model(model, config)
        except (ConfigError, ConfigErrors) as exc:
            errors = exc.errors if isinstance(exc, ConfigErrors) else [exc]
            shown = path / "configs" / name  # name the file the user knows, not the staging copy
            raise ConfigErrors(
                [
                    ConfigError(shown, f"as rendered from its template: {e.message}", line=e.line)
                    for e in errors
                ]
            ) from None


def _install_over(
    stage: Path, path: Path, replace: list[str], keep: list[str]
) -> tuple[list[str], list[str], dict[str, str]]:
    """Move the new files into the analysis; a file about to be replaced that differs from its new
    version (a user's edit) is first copied below `.gridpipe/overwritten/<time>/`."""
    written, kept = [], []
    backed_up: dict[str, str] = {}
    backups = Path(STATE_DIR) / "overwritten" / utcnow().strftime("%Y%m%dT%H%M%S.%fZ")
    for directory in sorted(d for d in stage.rglob("*") if d.is_dir()):
        (path / directory.relative_to(stage)).mkdir(parents=True, exist_ok=True)
    for rel in replace:
        source = stage / rel
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        old = path / rel
        if rel != METADATA_FILE and old.is_file() and old.read_bytes() != source.read_bytes():
            (path / backups / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(old, path / backups / rel)
            backed_up[rel] = str(backups / rel)
        os.replace(source, path / rel)
        written.append(rel)
    for rel in keep:
        if (path / rel).exists():
            kept.append(rel)
        else:
            os.replace(stage / rel, path / rel)
            written.append(rel)
    return written, kept, backed_up


def _log(root: Path, path: Path, written: list[str], kept: list[str], created: bool) -> None:
    """Append what was written and kept to the log below `root` (the stage or the analysis `path`)."""
    log = root / CREATE_LOG
    log.parent.mkdir(parents=True, exist_ok=True)
    stamp = utcnow().isoformat()
    lines = [f"{stamp} {'created' if created else 'overwrote'} analysis {path} (gridpipe {__version__})"]
    lines += [f"{stamp} wrote {rel}" for rel in written] + [f"{stamp} kept {rel}" for rel in kept]
    with log.open("a", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")


def create_analysis(req: CreateRequest) -> CreateResult:
    """Create (or with `overwrite`, refresh) the analysis described by `req`."""
    _validate(req)
    workflow_file = req.workflow or skeleton_dir() / _payload(req.payload).workflow
    spec = load_workflow(workflow_file)
    spec_text = workflow_file.read_text(encoding="utf-8")
    parent = req.analyses_dir.expanduser().resolve()
    path = parent / req.name
    previous: dict[str, Any] | None = None
    if path.exists() or path.is_symlink():
        if not req.overwrite:
            raise AnalysisExistsError(
                f"{path} already exists; pass --overwrite to re-render its configs and scripts"
            )
        if path.is_symlink():  # overwriting through it would re-render (rename) the analysis it points to
            raise AnalysisExistsError(
                f"{path} is a symbolic link to {os.path.realpath(path)}; --overwrite works on an analysis "
                "folder itself: overwrite that analysis by its own name and folder, or remove the link"
            )
        if not (path / METADATA_FILE).is_file():
            raise AnalysisExistsError(
                f"{path} exists but is not a gridpipe analysis (no {METADATA_FILE}); "
                "choose another name or directory"
            )
        previous = read_metadata(path)
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--analyses-dir {parent}: cannot create it ({exc.strerror})") from None
    with _staging(parent, req.name) as stage:
        replace, keep = _build(stage, req, path, spec, spec_text, previous)
        overridden = _overridden(req, spec)
        if previous is None:
            written = sorted(str(p.relative_to(stage)) for p in stage.rglob("*") if p.is_file())
            _log(stage, path, written, [], created=True)
            try:
                stage.rename(path)
            except OSError as exc:
                raise AnalysisExistsError(f"{path} could not be created ({exc.strerror})") from None
            return CreateResult(
                path=path,
                created=True,
                written=written,
                overridden=overridden,
                inputs=sorted(spec.inputs.values()),
            )
        written, kept, backed_up = _install_over(stage, path, replace, keep)
    _log(path, path, written, kept, created=False)
    return CreateResult(
        path=path,
        created=False,
        written=written,
        kept=kept,
        overridden=overridden,
        inputs=sorted(spec.inputs.values()),
        backed_up=backed_up,
    )


def _overridden(req: CreateRequest, spec: WorkflowSpec) -> list[str]:
    """Templates of this tree that the request's template folder replaces."""
    if req.templates is None:
        return []
    names = sorted({item.template for item in spec.tree.files} | {"lists/input.list.j2"})
    return overridden_templates(environment([req.templates]), names)
