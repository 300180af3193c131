"""Read what DIRAC's data-management commands print: LFN lists, pprint-ed result dicts, replica tables.

DIRAC's `dirac-dms-lfn-metadata` (and the other `Dirac()` API scripts) print `pprint.pformat` of a
`{'Failed': {...}, 'Successful': {...}}` dict, with `datetime.datetime(...)` values; `dirac-dms-lfn-replicas`
prints a `printTable` table (older releases: the dict). These are parsed with `ast`, never evaluated.
"""

from __future__ import annotations

import ast
import re
from typing import Any

from gridpipe.core.exceptions import StorageError
from gridpipe.storage.checksum import format_adler32
from gridpipe.storage.contract import FileInfo

NO_SUCH_FILE = "No such file or directory"
"""The reason DIRAC's file catalogue gives for an LFN it does not know."""
ADLER_TYPES = frozenset({"", "AD", "ADLER", "ADLER32"})
"""Spellings of ChecksumType that mean Adler-32 (upper-cased)."""
_OPEN, _CLOSE = "{[(", "}])"
_REMOVE_FAILED = re.compile(r"Failed to remove (\d+) files with error: (.*)")
_SECRET = re.compile(r"(?i)\b(password|passwd|token|secret|key)\b(\s*[:=]\s*)\S+")


def result_dict(text: str) -> dict[str, Any] | None:
    """The first `{'Failed': ..., 'Successful': ...}` dict printed in `text`, or None if there is none."""
    for found in re.finditer(r"^\s*\{", text, re.MULTILINE):
        start = found.end() - 1
        end = _literal_end(text, start)
        if end is None:
            continue
        try:
            value = _value(ast.parse(text[start:end], mode="eval").body)
        except (SyntaxError, ValueError, TypeError, RecursionError):
            continue
        if isinstance(value, dict) and {"Failed", "Successful"} <= set(value):
            return value
    return None


def metadata_entries(text: str, what: str) -> tuple[dict[str, FileInfo | None], dict[str, str]]:
    """Files (None for directories) and failures by LFN, from `dirac-dms-lfn-metadata` output."""
    result = result_dict(text)
    if result is None or not isinstance(result["Successful"], dict) or not isinstance(result["Failed"], dict):
        raise StorageError(f"{what}: dirac-dms-lfn-metadata printed no result dict: {summary(text)}")
    found = {str(lfn): file_info(str(lfn), meta) for lfn, meta in result["Successful"].items()}
    return found, {str(lfn): str(reason) for lfn, reason in result["Failed"].items()}


def file_info(lfn: str, meta: Any) -> FileInfo | None:
    """A FileInfo from one catalogue metadata dict; None when it describes a directory."""
    if not isinstance(meta, dict) or "Size" not in meta or "DirID" in meta:
        return None
    kind = str(meta.get("ChecksumType") or "").upper()
    checksum = str(meta.get("Checksum") or "").strip()
    return FileInfo(lfn, int(meta["Size"]), normal_adler32(checksum) if kind in ADLER_TYPES else "")


def normal_adler32(text: str) -> str:
    """An Adler-32 as 8 lowercase hex digits (DIRAC may record it unpadded or upper-case); else as given."""
    if re.fullmatch(r"(0x)?[0-9a-fA-F]{1,8}", text):
        return format_adler32(int(text, 16))
    return text


def find_lfns(text: str, folder: str) -> list[str]:
    """LFNs below `folder` in `dirac-dms-find-lfns` output (one per line; other lines are log text)."""
    prefix = folder.rstrip("/") + "/"
    lfns = (line.strip() for line in text.splitlines())
    return sorted({lfn for lfn in lfns if lfn.startswith(prefix) and not any(c.isspace() for c in lfn)})


def replica_table(text: str) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Storage elements and failures by LFN, from `dirac-dms-lfn-replicas` (its table or its dict)."""
    result = result_dict(text)
    if result is not None:
        return (
            {str(lfn): sorted(map(str, ses)) for lfn, ses in dict(result["Successful"]).items()},
            {str(lfn): str(reason) for lfn, reason in dict(result["Failed"]).items()},
        )
    replicas: dict[str, list[str]] = {}
    failed: dict[str, str] = {}
    lines = text.splitlines()
    rule = next((i for i, line in enumerate(lines) if line.strip() and set(line.strip()) == {"="}), None)
    lfn = ""
    for line in lines[rule + 1 :] if rule is not None else []:
        cells = line.split(None, 2)
        if not cells:
            continue
        if not line[0].isspace():
            lfn, cells = cells[0], cells[1:]
        if lfn and cells and cells[0] == "Unknown" and "://" not in "".join(cells[1:]):
            failed[lfn] = cells[1] if len(cells) > 1 else "unknown error"
        elif lfn and cells:
            replicas.setdefault(lfn, []).append(cells[0])
    return {lfn: sorted(ses) for lfn, ses in replicas.items()}, failed


def remove_failures(text: str) -> list[tuple[int, str]]:
    """(count, reason) of each `Failed to remove N files with error: REASON` line of dirac-dms-remove-files."""
    return [(int(m[1]), m[2].strip()) for m in _REMOVE_FAILED.finditer(text)]


def summary(text: str, limit: int = 400) -> str:
    """The telling lines of a command's output on one line: error lines first, else the last ones."""
    lines = [_SECRET.sub(r"\1\2***", line.strip()) for line in text.splitlines() if line.strip()]
    telling = [line for line in lines if re.search(r"(?i)error|fail|mismatch|not |no such|denied", line)]
    text = " | ".join((telling or lines)[-4:]) or "no output"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _literal_end(text: str, start: int) -> int | None:
    """Index just past the bracketed literal opening at `start` (quotes respected), or None if unclosed."""
    depth, quote, i = 0, "", start
    while i < len(text):
        char = text[i]
        if quote:
            if char == "\\":
                i += 1
            elif char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char in _OPEN:
            depth += 1
        elif char in _CLOSE:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return None


def _value(node: ast.expr) -> Any:
    """The plain value of a literal node; calls such as `datetime.datetime(...)` become their source text."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Dict):
        if any(key is None for key in node.keys):
            raise ValueError("dict unpacking is not a printed value")
        return {_value(k): _value(v) for k, v in zip(node.keys, node.values, strict=True)}  # type: ignore[arg-type]
    if isinstance(node, ast.List | ast.Tuple | ast.Set):
        return [_value(item) for item in node.elts]
    if (
        isinstance(node, ast.UnaryOp)
        and isinstance(node.op, ast.USub)
        and isinstance(node.operand, ast.Constant)
    ):
        return -node.operand.value
    return ast.unparse(node)
