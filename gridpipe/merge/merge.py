"""`merge_files`: merge HDF5 files of one layout into one file that appears whole or not at all."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from gridpipe.core.exceptions import GridpipeError, UsageError
from gridpipe.core.fsutil import temp_path_for
from gridpipe.merge.copymode import write_copy
from gridpipe.merge.inputs import InputFile, screen_inputs
from gridpipe.merge.report import MergeMode, MergeReport
from gridpipe.merge.schema import check_schemas
from gridpipe.merge.vds import write_vds
from gridpipe.merge.verify import expected_rows, verify_output


def _check_request(
    inputs: Sequence[Path], output: Path, mode: str, remove_inputs: bool, overwrite: bool
) -> None:
    if mode not in ("copy", "vds"):
        raise UsageError(f"merge mode {mode!r} is unknown; use 'copy' or 'vds'")
    if not inputs:
        raise UsageError(f"{output}: no input files to merge")
    if remove_inputs and mode == "vds":
        raise UsageError(f"{output}: a VDS index reads its inputs, so remove_inputs needs mode 'copy'")
    if output.exists() and not overwrite:
        raise UsageError(f"{output}: already exists; remove it or pass overwrite=True (--overwrite)")
    seen: dict[str, Path] = {}
    target = os.path.realpath(output)
    for path in inputs:
        real = os.path.realpath(path)
        if real == target or (output.exists() and path.exists() and output.samefile(path)):
            raise UsageError(f"{output}: the output is also an input; choose another output name")
        if real in seen:
            raise UsageError(f"{path}: given twice (also as {seen[real]}); each input is merged once")
        seen[real] = path


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _publish(tmp: Path, output: Path, overwrite: bool) -> None:
    """Give `tmp` the final name; without `overwrite`, never replace a file that appeared meanwhile."""
    if overwrite:
        os.replace(tmp, output)
        return
    try:
        os.link(tmp, output)
    except FileExistsError:
        raise UsageError(f"{output}: appeared while merging; not replaced (pass overwrite=True)") from None
    except OSError:  # no hard links on this file system: check, then rename
        if output.exists():
            raise UsageError(
                f"{output}: appeared while merging; not replaced (pass overwrite=True)"
            ) from None
        os.replace(tmp, output)
        return
    tmp.unlink()


def _remove(inputs: Sequence[InputFile], output: Path) -> list[Path]:
    removed: list[Path] = []
    for inp in inputs:
        try:
            inp.path.unlink()
        except OSError as exc:
            raise GridpipeError(
                f"{inp.path}: merged into {output} but could not be removed ({exc.strerror}); remove it by hand"
            ) from None
        removed.append(inp.path)
    return removed


def merge_files(
    inputs: Sequence[Path],
    output: Path,
    *,
    strict: bool = False,
    mode: MergeMode = "copy",
    remove_inputs: bool = False,
    overwrite: bool = False,
    keep_order: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> MergeReport:
    """Merge HDF5 files of one layout into `output`; see the package docstring for the guarantees.

    `progress(done, total)` is called after each input is appended. `keep_order=True` keeps rows in
    exact input order (slower: see `gridpipe.merge.appender`). `remove_inputs` deletes the merged
    inputs (never the skipped ones) only after the output is verified and in place.
    """
    paths, output = [Path(p) for p in inputs], Path(output)
    _check_request(paths, output, mode, remove_inputs, overwrite)
    good, skipped = screen_inputs(paths, strict=strict)
    check_schemas(good)
    expected = expected_rows(good)
    report = MergeReport(output, mode, [i.path for i in good], skipped, dict(expected))
    report.bytes_in = sum(i.size for i in good)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(output)
    try:
        if mode == "copy":
            stats = write_copy(good, tmp, keep_order=keep_order, progress=progress)
            report.chunks_copied, report.rows_recoded = stats.chunks_copied, stats.rows_recoded
        else:
            write_vds(good, tmp, progress=progress)
        verify_output(tmp, expected, list(good[0].nodes))
        _fsync(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # the temp file was made private; the result is a normal file
        _publish(tmp, output, overwrite)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    report.bytes_out = output.stat().st_size
    if remove_inputs:
        report.removed_inputs = _remove(good, output)
    return report
