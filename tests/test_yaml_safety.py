"""Every YAML file gridpipe reads is safe against alias bombs, deep nesting and alias loops."""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gridpipe.core.safeyaml import MAX_DEPTH, MAX_NODES, YamlProblem, parse


def _bomb(levels: int) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("levels", [6, 9, 12])
def test_alias_bombs_are_refused_quickly(levels):
    started = time.monotonic()
    with pytest.raises(YamlProblem, match="aliases") as info:
        parse(_bomb(levels))
    assert time.monotonic() - started < 2
    assert info.value.line is not None


def test_mapping_alias_bomb_is_refused():
    text = "a: &a {x: 1, y: 2, z: 3, w: 4}\n"
    for i in range(1, 12):
        text += (
            f"b{i}: &b{i} {{"
            + ", ".join(f"k{j}: *{'a' if i == 1 else f'b{i - 1}'}" for j in range(6))
            + "}\n"
        )
    with pytest.raises(YamlProblem, match="aliases"):
        parse(text)


def test_a_few_aliases_are_fine():
    doc = parse("base: &b {x: 1}\none: *b\ntwo: *b\nlist: [*b, *b]\n")
    assert doc.data["two"] == {"x": 1}
    assert doc.lines[("two",)] == 3


@pytest.mark.parametrize(
    "text",
    [
        "[" * 500 + "]" * 500,
        "{a: " * 300 + "1" + "}" * 300,
        "".join(f"{'  ' * i}k{i}:\n" for i in range(200)) + "  " * 200 + "v\n",
        "".join(f"{'  ' * i}- \n" for i in range(200)),
    ],
)
def test_deep_nesting_is_refused(text):
    with pytest.raises(YamlProblem, match=f"deeper than {MAX_DEPTH}"):
        parse(text)


def test_nesting_at_the_limit_is_fine():
    doc = parse("[" * MAX_DEPTH + "]" * MAX_DEPTH)
    assert doc.data is not None


def test_alias_loop_is_refused():
    with pytest.raises(YamlProblem, match=r"loop|recursive"):
        parse("a: &a [1, *a]\n")


def test_duplicate_keys_name_the_key_and_both_lines():
    with pytest.raises(YamlProblem, match="first on line 2") as info:
        parse("x: 1\ny:\n  z: 1\ny: 2\n")
    assert info.value.line == 4
    assert info.value.path == ("y",)


def test_python_tags_are_not_constructed():
    with pytest.raises(YamlProblem, match="invalid YAML"):
        parse("x: !!python/object/apply:os.system ['true']\n")


def test_limits_are_large_enough_for_real_configs():
    doc = parse("values: [" + ", ".join(str(i) for i in range(MAX_NODES // 2)) + "]\n")
    assert len(doc.data["values"]) == MAX_NODES // 2


@pytest.mark.slow
@pytest.mark.parametrize("name", ["grid.yaml", "workflow.yaml", "analysis.yaml"])
@pytest.mark.parametrize("kind", ["bomb", "deep"])
def test_check_refuses_a_bomb_in_every_config(tmp_path: Path, name: str, kind: str):
    """`gridpipe check` on an analysis whose config is an alias bomb: one line naming the file, exit 2,
    in bounded time and memory."""
    ana = tmp_path / "ana"
    subprocess.run(
        [sys.executable, "-m", "gridpipe", "create-analysis", "ana", "--analyses-dir", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    config = ana / "configs" / name
    config.write_text(_bomb(9) if kind == "bomb" else "x: " + "[" * 500 + "]" * 500 + "\n")
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "gridpipe", "check", "-a", str(ana)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert time.monotonic() - started < 30
    assert proc.returncode == 2, proc.stderr
    said = proc.stdout + proc.stderr
    assert str(config) in said
    assert ("aliases" if kind == "bomb" else "deeper than") in said
    assert "internal error" not in said
    assert resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss < 1_000_000  # KiB: well under 1 GB
