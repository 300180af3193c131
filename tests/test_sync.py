"""Verified parallel download and sync recovery against a real local storage element."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gridpipe.core.exceptions import UsageError
from gridpipe.storage.checksum import adler32_bytes, adler32_file
from gridpipe.storage.contract import FileInfo
from gridpipe.storage.local import LocalStorage
from gridpipe.storage.sync import download, plan_sync, sync, temp_target

LFN_DIR = "/vo.test/user/t/tester/ana/data/DL2/gamma"


def _fill(tmp_path: Path, count: int, size: int | None = None) -> tuple[LocalStorage, dict[str, bytes]]:
    """A storage holding `count` files of random bytes; returns it and the bytes by LFN."""
    storage = LocalStorage(tmp_path / "se")
    src = tmp_path / "src.bin"
    contents = {}
    for i in range(count):
        data = os.urandom(size or 200 + 37 * i)
        src.write_bytes(data)
        lfn = f"{LFN_DIR}/DL2_gamma_tail_run{i:03d}.h5"
        storage.put(src, lfn)
        contents[lfn] = data
    return storage, contents


def _name(lfn: str) -> str:
    return lfn.rsplit("/", 1)[1]


def _assert_all_verified(local: Path, storage: LocalStorage) -> None:
    for info in storage.list(LFN_DIR):
        path = local / _name(info.lfn)
        assert (path.stat().st_size, adler32_file(path)) == (info.size, info.adler32)


def test_sync_recovers_missing_and_truncated_and_reports_corrupt(tmp_path):
    storage, contents = _fill(tmp_path, 250)
    lfns = sorted(contents)
    local = tmp_path / "local"
    first = sync(storage, LFN_DIR, local, jobs=4)
    assert len(first.download.downloaded) == 250 and first.complete
    assert first.download.n_bytes == sum(len(d) for d in contents.values())
    assert sorted(p.name for p in local.iterdir()) == [_name(lfn) for lfn in lfns]
    _assert_all_verified(local, storage)
    nothing = sync(storage, LFN_DIR, local, jobs=4)
    assert (nothing.download.attempts, len(nothing.plan.ok)) == (0, 250)

    corrupt, truncated, missing = lfns[17], lfns[100], lfns[200]
    se_copy = storage.root / corrupt[1:]
    se_copy.write_bytes(bytes([contents[corrupt][0] ^ 1]) + contents[corrupt][1:])
    (local / _name(corrupt)).unlink()
    (local / _name(truncated)).write_bytes(contents[truncated][:50])
    (local / _name(missing)).unlink()
    (local / "stray.h5").write_bytes(b"not from the grid")
    (local / "DL2_gamma_tail_merged.h5").write_bytes(b"merged output")
    partial = local / ".DL2_gamma_tail_run005.h5.ab12cd34.part"
    partial.write_bytes(b"half a file")

    seen: list[tuple[str, bool]] = []
    report = sync(storage, LFN_DIR, local, jobs=4, retries=2, progress=lambda f, ok: seen.append((f.lfn, ok)))
    plan = report.plan
    assert len(plan.ok) == 247
    assert sorted(f.lfn for f in plan.missing) == [corrupt, missing]
    size = len(contents[truncated])
    assert [(m.file.lfn, m.reason) for m in plan.wrong] == [(truncated, f"size 50, expected {size}")]
    assert (plan.extra, plan.partial) == ([local / "stray.h5"], [partial])
    assert [f.lfn for f in report.download.downloaded] == [truncated, missing]
    [failure] = report.download.failures
    assert (failure.file.lfn, failure.attempts) == (corrupt, 3)
    assert corrupt in failure.reason and "adler32" in failure.reason
    assert report.download.attempts == 5 and not report.complete and report.deleted == []
    assert sorted(seen) == sorted([(truncated, True), (missing, True), (corrupt, False)])
    assert (local / _name(truncated)).read_bytes() == contents[truncated]
    assert not (local / _name(corrupt)).exists()
    assert [p for p in local.iterdir() if temp_target(p.name)] == [partial]

    cleaned = sync(storage, LFN_DIR, local, delete_extra=True)
    assert cleaned.deleted == [local / "stray.h5", partial]
    assert not (local / "stray.h5").exists() and (local / "DL2_gamma_tail_merged.h5").exists()

    src = tmp_path / "good.bin"
    src.write_bytes(contents[corrupt])
    storage.put(src, corrupt)
    fixed = sync(storage, LFN_DIR, local)
    assert [f.lfn for f in fixed.download.downloaded] == [corrupt] and fixed.complete
    final = sync(storage, LFN_DIR, local, delete_extra=True)
    assert (final.download.attempts, len(final.plan.ok), final.deleted) == (0, 250, [])
    _assert_all_verified(local, storage)


def test_plan_compares_checksums_only_when_sizes_match(tmp_path):
    local = tmp_path / "local"
    local.mkdir()
    (local / "same.h5").write_bytes(b"abcd")
    (local / "swapped.h5").write_bytes(b"dcba")
    (local / "nosum.h5").write_bytes(b"wxyz")
    remote = [
        FileInfo("/vo/d/same.h5", 4, adler32_bytes(b"abcd").lstrip("0").upper()),
        FileInfo("/vo/d/swapped.h5", 4, adler32_bytes(b"abcd")),
        FileInfo("/vo/d/nosum.h5", 4, ""),
        FileInfo("/vo/d/absent.h5", 4, adler32_bytes(b"abcd")),
    ]
    plan = plan_sync(remote, local)
    assert [f.lfn for f in plan.ok] == ["/vo/d/same.h5", "/vo/d/nosum.h5"]
    assert [m.reason for m in plan.wrong] == [
        f"adler32 {adler32_bytes(b'dcba')}, expected {remote[1].adler32}"
    ]
    assert [f.lfn for f in plan.missing] == ["/vo/d/absent.h5"]
    assert plan_sync(remote, tmp_path / "does-not-exist").missing == remote


def test_pattern_limits_what_is_fetched_and_what_is_extra(tmp_path):
    storage, contents = _fill(tmp_path, 30)
    local = tmp_path / "local"
    local.mkdir()
    (local / "notes.txt").write_text("mine")
    (local / "DL2_gamma_tail_run999.h5").write_bytes(b"old")
    report = sync(storage, LFN_DIR, local, pattern="DL2_gamma_tail_run00*.h5", delete_extra=True)
    assert [f.lfn for f in report.download.downloaded] == sorted(contents)[:10]
    assert report.deleted == []
    report = sync(storage, LFN_DIR, local, pattern="DL2_gamma_tail_run*.h5", delete_extra=True)
    assert len(report.download.downloaded) == 20
    assert report.deleted == [local / "DL2_gamma_tail_run999.h5"]
    assert (local / "notes.txt").exists()


def test_download_refuses_clashing_names_and_bad_arguments(tmp_path):
    storage = LocalStorage(tmp_path / "se")
    clash = [FileInfo("/vo/a/f.h5", 1, "00620062"), FileInfo("/vo/b/f.h5", 1, "00620062")]
    with pytest.raises(UsageError, match="same file name"):
        download(storage, clash, tmp_path / "local")
    with pytest.raises(UsageError, match="jobs"):
        download(storage, clash[:1], tmp_path / "local", jobs=0)
    assert not (tmp_path / "local").exists()


CHILD = """
import sys, time, zlib
from pathlib import Path
from gridpipe.storage import checksum
from gridpipe.storage.local import LocalStorage
from gridpipe.storage.sync import sync

# Copy in 16 KiB blocks and hang for good in the middle of the 4th file (4 blocks per file).
checksum.COPY_BLOCK_SIZE = 16 * 1024
real_adler32, calls = zlib.adler32, []
def stalling_adler32(data, value=1):
    calls.append(1)
    if len(calls) == 15:
        Path(sys.argv[4]).touch()
        time.sleep(3600)
    return real_adler32(data, value)
zlib.adler32 = stalling_adler32
sync(LocalStorage(Path(sys.argv[1])), sys.argv[2], Path(sys.argv[3]), jobs=1)
"""


def test_download_killed_mid_file_leaves_no_incomplete_file(tmp_path):
    storage, contents = _fill(tmp_path, 12, size=64 * 1024)
    local, marker = tmp_path / "local", tmp_path / "stalled"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    child = subprocess.Popen(
        [sys.executable, str(script), str(storage.root), LFN_DIR, str(local), str(marker)]
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert marker.exists(), f"the child never reached the 4th file (exit {child.poll()})"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL
    lfns = sorted(contents)
    finals = sorted(p.name for p in local.iterdir() if not temp_target(p.name))
    assert finals == [_name(lfn) for lfn in lfns[:3]]
    for lfn in lfns[:3]:
        assert (local / _name(lfn)).read_bytes() == contents[lfn]
    [part] = [p for p in local.iterdir() if temp_target(p.name)]
    assert temp_target(part.name) == _name(lfns[3]) and 0 < part.stat().st_size < 64 * 1024

    rerun = sync(storage, LFN_DIR, local, delete_extra=True)
    assert rerun.complete and len(rerun.download.downloaded) == 9 and rerun.deleted == [part]
    assert sorted(p.name for p in local.iterdir()) == [_name(lfn) for lfn in lfns]
    _assert_all_verified(local, storage)
