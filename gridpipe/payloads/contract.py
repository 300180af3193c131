"""The payload contract: what a job executes, as command lines made from a stage's parameters.

Payloads are found through the `gridpipe.payloads` entry-point group (`gridpipe.core.plugins`); each entry
point names a subclass of `Payload`. A stage's `command` is either one list of command lines or one list
per payload name; the payload picks its own and checks them before any job exists (`gridpipe check`).
"""

from __future__ import annotations

import shlex
import string
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import ClassVar, Protocol

from gridpipe.core.exceptions import GridpipeError
from gridpipe.core.plugins import Group, load_class

CommandLines = list[str]


class OutputCheck(Protocol):
    """One check of a job's output file, runnable both where gridpipe is (the job worker) and where it is
    not (a DIRAC node, through the job wrapper): one definition, two ways to run it."""

    def problem(self, path: Path) -> str | None:
        """Why the file at `path` must not be registered, or None when it is fine."""

    def command(self, name: str) -> list[str]:
        """A command line that checks file `name` in the job's working directory with no gridpipe there:
        it exits with 0 when the file is fine, else non-zero after printing why (one line)."""


class Payload:
    """A payload: the command lines of a stage, and the problems found in them before planning."""

    name: ClassVar[str]
    workflow: ClassVar[str] = "workflow.yaml"
    """The workflow of the analysis skeleton a new analysis of this payload gets (unless --workflow)."""

    def template_values(self) -> dict[str, object]:
        """Values the payload's config templates use beyond gridpipe's own (rendered by create-analysis)."""
        return {}

    def failure_reason(self, program: str, exit_code: int, stderr: str) -> str | None:
        """Why a command of this payload failed, from its exit code and what it wrote to stderr; None:
        gridpipe's own wording ("PROGRAM exited with code N")."""
        return None

    def output_check(self, name: str) -> OutputCheck | None:
        """How the job output named `name` is checked before it is registered; None: it is not."""
        return None

    def output_problem(self, path: Path) -> str | None:
        """Why the output file `path` of a job must not be registered (checked after the job's commands
        succeeded, before registration), or None when it is fine."""
        check = self.output_check(path.name)
        return check.problem(path) if check else None

    def merge_command(self, inputs: Sequence[Path], output: Path) -> list[str] | None:
        """The command line that merges a unit's job outputs into `output`; None: gridpipe's own merge."""
        return None

    def commands(self, stage: str, command: Sequence[str] | Mapping[str, Sequence[str]]) -> CommandLines:
        """The command lines of stage `stage` for this payload; KeyError when it has none."""
        if isinstance(command, Mapping):
            if self.name not in command:
                raise KeyError(self.name)
            return list(command[self.name])
        return list(command)

    def check(
        self, stage: str, command: Sequence[str] | Mapping[str, Sequence[str]], placeholders: set[str]
    ) -> list[str]:
        """Problems of the stage's command lines for this payload (one line each, [] when fine)."""
        try:
            lines = self.commands(stage, command)
        except KeyError:
            return [
                f"stage '{stage}' has no command for payload '{self.name}'; add one or choose another payload"
            ]
        problems: list[str] = []
        for line in lines:
            try:
                if not shlex.split(line):
                    problems.append(f"stage '{stage}': empty command")
            except ValueError as exc:
                problems.append(f"stage '{stage}': cannot split command {line!r} ({exc})")
                continue
            problems += [
                f"stage '{stage}': unknown placeholder {{{name}}} in {line!r}"
                for name in _fields(line)
                if name not in placeholders
            ]
        return problems


def _fields(template: str) -> list[str]:
    """The placeholder names of a format template (`{merged[dl2][gamma]}` -> `merged`)."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError:
        return []
    return [field.split("[", 1)[0].split(".", 1)[0] for _, field, _, _ in parsed if field]


@cache
def payload_named(name: str) -> Payload:
    """The installed payload `name` (UsageError when it is not installed or cannot load)."""
    return load_class(Group.payloads, name, Payload)()


def installed_payload(name: str | None) -> Payload | None:
    """The payload a job names, None when it names none or one that is not installed here (its outputs are
    then taken as they are: the job worker's rule, and the DIRAC wrapper's)."""
    if name is None:
        return None
    try:
        return payload_named(name)
    except GridpipeError:
        return None
