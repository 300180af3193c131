"""The local storage (directory SE + SQLite catalogue), its checksums and the storage registry."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import tempfile
import tomllib
import zlib
from pathlib import Path

import pytest

from gridpipe.analysis.config import GridConfig
from gridpipe.core.exceptions import StorageError, UsageError
from gridpipe.storage import checksum, local
from gridpipe.storage.checksum import adler32_bytes, adler32_file, copy_with_adler32, same_adler32
from gridpipe.storage.contract import Storage
from gridpipe.storage.local import LocalStorage
from gridpipe.storage.registry import STORAGE_GROUP, open_storage, storage_class, storage_entry_points
from gridpipe.testing.storage_conformance import StorageConformance

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


class TestLocalStorageConformance(StorageConformance):
    @pytest.fixture
    def storage(self, tmp_path):
        return LocalStorage(tmp_path / "se")


@pytest.fixture
def storage(tmp_path):
    return LocalStorage(tmp_path / "se")


def _file(tmp_path: Path, data: bytes, name: str = "src.bin") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# --- checksums -------------------------------------------------------------------------------


def test_adler32_known_values_zero_padded():
    assert adler32_bytes(b"Wikipedia") == "11e60398"
    assert adler32_bytes(b"") == "00000001"
    assert adler32_bytes(b"a") == "00620062"


def test_adler32_file_matches_zlib_over_many_blocks(tmp_path):
    data = os.urandom(max(checksum.BLOCK_SIZE, checksum.COPY_BLOCK_SIZE) * 2 + 12345)
    expected = f"{zlib.adler32(data):08x}"
    assert adler32_file(_file(tmp_path, data)) == expected
    with open(_file(tmp_path, data), "rb", buffering=0) as src, open(tmp_path / "copy", "wb") as dst:
        assert copy_with_adler32(src.fileno(), dst.fileno()) == (len(data), expected)
        src.seek(0)
        assert copy_with_adler32(src.fileno(), None) == (len(data), expected)
    assert (tmp_path / "copy").read_bytes() == data


def test_same_adler32_tolerates_dirac_spellings():
    assert same_adler32("00620062", "620062")
    assert same_adler32("11E60398", "11e60398")
    assert not same_adler32("11e60398", "11e60399")
    assert not same_adler32("", "00000001")


# --- local storage specifics -----------------------------------------------------------------


def test_lfn_is_stored_below_root_with_its_path(storage, tmp_path):
    data = os.urandom(checksum.COPY_BLOCK_SIZE * 3 + 99)
    storage.put(_file(tmp_path, data), "/vo/user/x/file.h5")
    assert (storage.root / "vo/user/x/file.h5").read_bytes() == data
    assert [p.name for p in (storage.root / "vo/user/x").iterdir()] == ["file.h5"]
    storage.get("/vo/user/x/file.h5", tmp_path / "back.h5")
    assert (tmp_path / "back.h5").read_bytes() == data


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_corruption_inside_se_is_detected_on_get(storage, tmp_path, damage):
    data = os.urandom(5000)
    storage.put(_file(tmp_path, data), "/vo/c/file.h5")
    in_se = storage.root / "vo/c/file.h5"
    in_se.write_bytes(bytes([data[0] ^ 0xFF]) + data[1:] if damage == "flip" else data[:4000])
    out = tmp_path / "out"
    out.mkdir()
    (out / "file.h5").write_bytes(b"previous copy")
    with pytest.raises(StorageError) as err:
        storage.get("/vo/c/file.h5", out / "file.h5")
    assert "/vo/c/file.h5" in err.value.detail
    assert ("adler32" if damage == "flip" else "size 4000") in err.value.detail
    assert [p.name for p in out.iterdir()] == ["file.h5"]
    assert (out / "file.h5").read_bytes() == b"previous copy"


def test_stat_and_remove_cross_query_chunks(storage, tmp_path):
    src = _file(tmp_path, b"data")
    asked = [f"/vo/chunk/f{i:04d}.h5" for i in range(1201)]
    present = asked[0], asked[499], asked[500], asked[1200]
    for lfn in present:
        storage.put(src, lfn)
    assert sorted(storage.stat(asked)) == sorted(present)
    storage.remove(asked[:-1])
    assert [f.lfn for f in storage.list("/vo/chunk")] == [asked[1200]]


def test_list_reads_the_catalogue_not_the_directory(storage, tmp_path):
    storage.put(_file(tmp_path, b"data"), "/vo/cat/recorded.h5")
    (storage.root / "vo/cat/dropped-in-by-hand.h5").write_bytes(b"data")
    assert [f.lfn for f in storage.list("/vo/cat")] == ["/vo/cat/recorded.h5"]
    assert storage.stat(["/vo/cat/dropped-in-by-hand.h5"]) == {}


def test_symlink_escape_is_refused(storage, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (storage.root / "vo").mkdir()
    (storage.root / "vo/link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(StorageError, match="outside the local storage root"):
        storage.put(_file(tmp_path, b"data"), "/vo/link/sub/file.h5")
    assert list(outside.iterdir()) == []
    storage.put(_file(tmp_path, b"data"), "/vo/real.h5")
    secret = outside / "secret.h5"
    secret.write_bytes(b"data")
    (storage.root / "vo/real.h5").unlink()
    (storage.root / "vo/real.h5").symlink_to(secret)
    with pytest.raises(StorageError, match="outside the local storage root"):
        storage.get("/vo/real.h5", tmp_path / "got.h5")
    with pytest.raises(StorageError):
        storage.remove(["/vo/real.h5"])
    assert secret.exists() and not (tmp_path / "got.h5").exists()


@pytest.mark.parametrize("fd_paths", [True, False], ids=["proc-fd", "realpath"])
@pytest.mark.parametrize("planted", ["vo/a/b", "vo/a", "vo"])
def test_symlink_planted_after_first_use_is_refused(storage, tmp_path, planted, fd_paths):
    storage._fd_paths = fd_paths and storage._fd_paths  # realpath: the way without Linux's /proc/self/fd
    storage.put(_file(tmp_path, b"one"), "/vo/a/b/one.h5")
    storage.get("/vo/a/b/one.h5", tmp_path / "one.h5")
    outside = tmp_path / "outside"
    outside.mkdir()
    # The very folder moves out of the root (same file system: same inode) and a link takes its place.
    (storage.root / planted).rename(outside / "moved")
    (storage.root / planted).symlink_to(outside / "moved", target_is_directory=True)
    before = sorted(p.relative_to(outside) for p in outside.rglob("*"))
    with pytest.raises(StorageError, match="outside the local storage root"):
        storage.put(_file(tmp_path, b"two"), "/vo/a/b/two.h5")
    with pytest.raises(StorageError, match="outside the local storage root"):
        storage.put(_file(tmp_path, b"two"), "/vo/a/b/two.h5", move=True)
    with pytest.raises(StorageError, match="outside the local storage root"):
        storage.get("/vo/a/b/one.h5", tmp_path / "again.h5")
    assert sorted(p.relative_to(outside) for p in outside.rglob("*")) == before
    assert (tmp_path / "src.bin").read_bytes() == b"two" and not (tmp_path / "again.h5").exists()


def test_symlinks_that_stay_below_the_root_are_followed(storage, tmp_path):
    storage.put(_file(tmp_path, b"data"), "/vo/real/file.h5")
    (storage.root / "vo/alias").symlink_to(storage.root / "vo/real", target_is_directory=True)
    storage.put(_file(tmp_path, b"more"), "/vo/alias/more.h5")
    assert (storage.root / "vo/real/more.h5").read_bytes() == b"more"
    storage.put(_file(tmp_path, b"data"), "/vo/real/listed.h5")
    (storage.root / "vo/real/listed.h5").unlink()
    (storage.root / "vo/real/listed.h5").symlink_to(storage.root / "vo/real/file.h5")
    assert storage.get("/vo/real/listed.h5", tmp_path / "got.h5").size == 4
    assert (tmp_path / "got.h5").read_bytes() == b"data"


def test_move_on_the_same_file_system_links_instead_of_copying(storage, tmp_path):
    src = _file(tmp_path, os.urandom(3000))
    inode = src.stat().st_ino
    info = storage.put(src, "/vo/mv/file.h5", move=True)
    stored = storage.root / "vo/mv/file.h5"
    assert (stored.stat().st_ino, stored.stat().st_nlink) == (inode, 1)
    assert not src.exists() and info.size == 3000
    assert [p.name for p in stored.parent.iterdir()] == ["file.h5"]


def test_move_of_a_file_with_other_names_copies_and_removes_only_src(storage, tmp_path):
    src = _file(tmp_path, b"shared inode")
    other = tmp_path / "other-name.bin"
    os.link(src, other)
    storage.put(src, "/vo/mv/file.h5", move=True)
    stored = storage.root / "vo/mv/file.h5"
    assert not src.exists() and other.read_bytes() == b"shared inode"
    assert stored.stat().st_ino != other.stat().st_ino
    other.write_bytes(b"changed later")
    storage.get("/vo/mv/file.h5", tmp_path / "got.h5")
    assert (tmp_path / "got.h5").read_bytes() == b"shared inode"


def test_move_of_a_symlink_stores_its_target_and_removes_the_link(storage, tmp_path):
    target = _file(tmp_path, b"pointed at")
    link = tmp_path / "link.bin"
    link.symlink_to(target)
    info = storage.put(link, "/vo/mv/file.h5", move=True)
    assert info.size == 10 and not link.is_symlink() and target.read_bytes() == b"pointed at"
    assert not (storage.root / "vo/mv/file.h5").is_symlink()


def test_move_of_the_stored_file_onto_itself_keeps_it(storage, tmp_path):
    storage.put(_file(tmp_path, b"in place"), "/vo/mv/file.h5")
    stored = storage.root / "vo/mv/file.h5"
    assert storage.put(stored, "/vo/mv/file.h5", move=True).size == 8
    storage.get("/vo/mv/file.h5", tmp_path / "got.h5")
    assert (tmp_path / "got.h5").read_bytes() == b"in place"


@pytest.mark.skipif(
    not os.path.isdir("/dev/shm") or os.stat("/dev/shm").st_dev == os.stat(Path.cwd()).st_dev,
    reason="needs /dev/shm on another file system",
)
def test_move_across_file_systems_copies_then_removes_src(tmp_path):
    storage = LocalStorage(tmp_path / "se")
    with tempfile.TemporaryDirectory(dir="/dev/shm") as shm:
        src = _file(Path(shm), b"from another file system")
        assert storage.put(src, "/vo/mv/file.h5", move=True).size == 24
        assert not src.exists()
    assert (storage.root / "vo/mv/file.h5").read_bytes() == b"from another file system"


@pytest.mark.parametrize("move", [False, True])
def test_put_that_cannot_record_leaves_src_and_the_se_untouched(tmp_path, monkeypatch, move):
    monkeypatch.setattr(local, "BUSY_TIMEOUT_S", 0.05)
    storage = LocalStorage(tmp_path / "se")
    storage.put(_file(tmp_path, b"old"), "/vo/busy/file.h5")
    src = _file(tmp_path, b"new content")
    holder = sqlite3.connect(storage.catalogue_path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(StorageError, match="database is locked"):
            storage.put(src, "/vo/busy/file.h5", move=move)
        holder.execute("ROLLBACK")
    finally:
        holder.close()
    assert src.read_bytes() == b"new content" and src.stat().st_nlink == 1
    assert [p.name for p in (storage.root / "vo/busy").iterdir()] == ["file.h5"]
    storage.get("/vo/busy/file.h5", tmp_path / "got.h5")
    assert (tmp_path / "got.h5").read_bytes() == b"old"


def test_get_creates_the_dest_folder_and_refuses_relative_lfns(storage, tmp_path):
    storage.put(_file(tmp_path, b"data"), "/vo/g/file.h5")
    storage.get("/vo/g/file.h5", tmp_path / "new" / "deeper" / "file.h5")
    assert (tmp_path / "new/deeper/file.h5").read_bytes() == b"data"
    with pytest.raises(StorageError, match=r"LFN 'vo/g/file\.h5'"):
        storage.get("vo/g/file.h5", tmp_path / "x.h5")


@pytest.mark.parametrize("lfn", ["/", "/vo/dir/", "/.catalogue.db", "/.catalogue.lock", "/.catalogue/x"])
def test_catalogue_names_and_folders_are_not_file_lfns(storage, tmp_path, lfn):
    with pytest.raises(StorageError):
        storage.put(_file(tmp_path, b"data"), lfn)
    assert storage.list("/") == []


def test_replicas_are_recorded_and_replaced(storage, tmp_path):
    src = _file(tmp_path, b"model")
    storage.put(src, "/vo/models/m.pkl", replicas=["DESY-ZN-Disk", "CNAF-Disk", "CNAF-Disk"])
    assert storage.replicas("/vo/models/m.pkl") == ["CNAF-Disk", "DESY-ZN-Disk", "local"]
    storage.put(src, "/vo/models/m.pkl", replicas=["PIC-Disk"])
    assert storage.replicas("/vo/models/m.pkl") == ["PIC-Disk", "local"]
    assert storage.replicas("/vo/models/none.pkl") == []
    with pytest.raises(StorageError, match="replica storage element"):
        storage.put(src, "/vo/models/m.pkl", replicas=["bad name"])
    storage.remove(["/vo/models/m.pkl"])
    assert storage.replicas("/vo/models/m.pkl") == []


def _put_many(root: str, worker: int, count: int) -> None:
    store = LocalStorage(Path(root))
    src = Path(root).parent / f"src{worker}.bin"
    for i in range(count):
        src.write_bytes(f"worker {worker} file {i} ".encode() * (i + 1))
        store.put(src, f"/vo/many/w{worker}/f{i:02d}.h5")
        store.put(src, "/vo/many/shared.h5")


def test_concurrent_puts_from_processes_are_all_recorded(tmp_path):
    root = tmp_path / "se"
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_put_many, args=(str(root), w, 20)) for w in range(4)]
    for proc in workers:
        proc.start()
    for proc in workers:
        proc.join(timeout=120)
    assert [proc.exitcode for proc in workers] == [0, 0, 0, 0]
    storage = LocalStorage(root)
    listed = storage.list("/vo/many")
    assert len(listed) == 81
    for info in listed:
        assert storage.get(info.lfn, tmp_path / "out" / info.lfn.lstrip("/")) == info
    assert (tmp_path / "out/vo/many/w3/f19.h5").read_bytes() == b"worker 3 file 19 " * 20


def test_from_config_uses_local_root(tmp_path):
    grid = GridConfig.model_validate(
        {
            "analysis_name": "ana",
            "grid": {"home": "/vo.test/user/t/tester", "path": "analyses", "user_name": "tester"},
            "backend": {"name": "local"},
            "storage": {"name": "local", "local_root": "state/storage"},  # where older versions wrote it
            "payload": {"name": "demo"},
        }
    )
    (tmp_path / "ana").mkdir()
    storage = open_storage(grid, tmp_path / "ana")
    assert isinstance(storage, LocalStorage)
    assert storage.root == (tmp_path / "ana/state/storage").resolve()
    absolute = GridConfig.model_validate(
        {**grid.model_dump(), "storage": {"name": "local", "local": {"root": str(tmp_path)}}}
    )
    assert open_storage(absolute, tmp_path / "ana").root == tmp_path.resolve()


def test_unknown_storage_names_the_installed_ones():
    with pytest.raises(UsageError, match=r"storage 'nosuch' is not installed; installed: .*local"):
        storage_class("nosuch")


def test_every_declared_storage_entry_point_loads():
    declared = tomllib.loads(PYPROJECT.read_text())["project"]["entry-points"][STORAGE_GROUP]
    installed = storage_entry_points()
    assert set(declared) <= set(installed), "reinstall: pip install -e ."
    for name, ep in installed.items():
        cls = ep.load()
        assert issubclass(cls, Storage) and cls.name == name
        assert storage_class(name) is cls
