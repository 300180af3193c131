"""Every parameter of every command takes each value as typer's own pydantic coercion takes it (the same
value or the same error), and the usual values are taken without pydantic."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from enum import Enum
from pathlib import Path
from typing import Any, get_args, get_origin

import pytest
from typer._click import Context
from typer._coercion import build_runtime_param
from typer.main import get_command

from gridpipe.cli.app import app
from gridpipe.cli.coercion import LightParam, Unsure, coerce


def _commands(command: Any) -> Iterator[Any]:
    yield command
    for sub in getattr(command, "commands", {}).values():
        yield from _commands(sub)


def _parameters() -> list[tuple[Any, Any]]:
    return [
        (command, param)
        for command in _commands(get_command(app))
        for param in command.params
        if hasattr(param, "type_descriptor") and param.type_descriptor.annotation is not bool
    ]


def _samples(annotation: Any, tmp: Path) -> list[Any]:
    if get_origin(annotation) is list:
        items = _samples(get_args(annotation)[0], tmp)
        return [[], items[:1], items[:3], tuple(items[-2:])]
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return [*(m.value for m in annotation), *(str(m.value).upper() for m in annotation), "bogus", ""]
    if annotation is int:
        return ["5", "0", "1", "-1", "64", "65", "05", "+3", " 7", "1_0", "x", "1.0", "9" * 30, ""]
    if annotation is Path:
        (tmp / "file").write_text("x")
        return [str(tmp), str(tmp / "file"), str(tmp / "missing"), "", "a//b", "-", "a\0b", "~"]
    return ["x", "", "[b]", " a b ", "-", "0.5", "5"]


def _outcome(call: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return ("value", call())
    except Exception as exc:
        return (type(exc).__name__, str(exc))


def test_every_parameter_takes_every_value_as_typer_does(tmp_path: Path) -> None:
    parameters = _parameters()
    assert len(parameters) > 50  # every command's options and arguments
    compared = 0
    for command, param in parameters:
        descriptor = param.type_descriptor
        ctx = Context(command)
        light = LightParam(descriptor.parameter_info, descriptor.annotation, descriptor)
        typer_own = build_runtime_param(descriptor)
        for value in _samples(descriptor.annotation, tmp_path):
            ours = _outcome(lambda v=value: light._coerce_value(v, param=param, ctx=ctx))
            theirs = _outcome(lambda v=value: typer_own._coerce_value(v, param=param, ctx=ctx))
            assert ours == theirs, (command.name, param.name, value)
            compared += 1
    assert compared > 300


def test_the_usual_values_need_no_pydantic(tmp_path: Path) -> None:
    status = get_command(app).commands["status"]  # type: ignore[attr-defined]
    params = {p.name: p for p in status.params}
    ctx = Context(status)

    def ours(name: str, value: Any) -> Any:
        d = params[name].type_descriptor
        return coerce(d.annotation, d.parameter_info, value, params[name], ctx)

    assert ours("limit", "20") == 20
    assert ours("stage", "dl2") == "dl2"
    assert [s.value for s in ours("state", ["RUNNING", "failed"])] == ["running", "failed"]
    assert ours("analysis_path", str(tmp_path)) == tmp_path
    for name, value in (("limit", "0"), ("limit", "1e3")):  # out of range, written otherwise: typer's
        with pytest.raises(Unsure):
            ours(name, value)


def test_status_runs_without_importing_pydantic_or_rich(tmp_path: Path) -> None:
    from gridpipe.analysis.create import CreateRequest, create_analysis

    path = create_analysis(CreateRequest(name="light", analyses_dir=tmp_path)).path
    probe = (
        "import sys\n"
        "from gridpipe.cli.app import run_cli\n"
        "code = run_cli(sys.argv[1:])\n"
        "print('LOADED', *(m for m in ('pydantic', 'rich') if m in sys.modules), code)\n"
    )
    env = {**os.environ, "NO_COLOR": "1"}
    for args, loaded in (
        (["status"], "LOADED 0"),
        (["status", "--limit", "5", "--status", "failed", "--stage", "dl2"], "LOADED rich 0"),  # job rows
    ):
        done = subprocess.run(
            [sys.executable, "-c", probe, *args, "-a", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            check=False,
        )
        assert done.stdout.splitlines()[-1] == loaded, (args, done.stdout, done.stderr)
    wrong = subprocess.run(
        [sys.executable, "-c", probe, "status", "--limit", "0", "-a", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert wrong.stdout.splitlines()[-1] == "LOADED pydantic rich 2"  # typer's error, through its adapter
    assert "Input should be greater than or equal to 1" in wrong.stderr
