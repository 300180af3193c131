"""The storage contract as a reusable test class: subclass it as `Test...` and override the `storage` fixture.

Only the contract of gridpipe.storage.contract.Storage is used here, so every storage (local SE, DIRAC,
a site's plug-in) can run the same tests. `lfn_base` may be overridden to a folder the storage may write.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from gridpipe.core.exceptions import StorageError
from gridpipe.storage.contract import FileInfo, Storage

BAD_LFNS = [
    "relative/file.h5",
    "/vo/../escape.h5",
    "/vo/./file.h5",
    "/vo//file.h5",
    "/vo/file\n.h5",
    "/vo/file\x00.h5",
    "/vo/with space.h5",
]


MakeFile = Callable[[bytes], Path]


def _adler(data: bytes) -> str:
    return f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"


class StorageConformance:
    """Tests every Storage must pass."""

    @pytest.fixture
    def storage(self) -> Storage:
        """The storage under test (override)."""
        raise NotImplementedError("override the `storage` fixture")

    @pytest.fixture
    def lfn_base(self) -> str:
        """A folder the tests may write below (override if the storage needs another)."""
        return "/vo.test/user/t/tester/conformance"

    @pytest.fixture
    def src(self, tmp_path: Path) -> MakeFile:
        """A function writing bytes to a fresh local file."""
        counter = iter(range(1_000_000))

        def make(data: bytes) -> Path:
            path = tmp_path / "src" / f"file{next(counter)}.bin"
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(data)
            return path

        return make

    def test_put_get_round_trip(self, storage: Storage, lfn_base: str, src: MakeFile, tmp_path: Path) -> None:
        data = os.urandom(70_000)
        lfn = f"{lfn_base}/rt/file.h5"
        info = storage.put(src(data), lfn)
        assert info == FileInfo(lfn, len(data), _adler(data))
        dest = tmp_path / "out" / "file.h5"
        assert storage.get(lfn, dest) == info
        assert dest.read_bytes() == data
        assert [p.name for p in dest.parent.iterdir()] == ["file.h5"]

    def test_stat_is_bulk_and_skips_missing(self, storage: Storage, lfn_base: str, src: MakeFile) -> None:
        lfns = [f"{lfn_base}/stat/f{i}.h5" for i in range(3)]
        for i, lfn in enumerate(lfns):
            storage.put(src(b"x" * (i + 1)), lfn)
        asked = [*lfns, f"{lfn_base}/stat/missing.h5", f"{lfn_base}/nowhere/f0.h5", lfns[0]]
        found = storage.stat(asked)
        assert set(found) == set(lfns)
        assert [found[lfn].size for lfn in lfns] == [1, 2, 3]
        assert found[lfns[1]].adler32 == _adler(b"xx")
        assert storage.exists(asked) == set(lfns)
        assert storage.stat([]) == {}

    def test_list_is_recursive_sorted_and_complete(
        self, storage: Storage, lfn_base: str, src: MakeFile
    ) -> None:
        base = f"{lfn_base}/list"
        lfns = [f"{base}/a/f{i:03d}.h5" for i in range(120)]
        lfns += [f"{base}/a/deeper/g{i}.h5" for i in range(3)]
        lfns += [f"{base}/ab/h.h5", f"{base}/a0.h5", f"{base}/b.h5"]
        path = src(b"payload")
        for lfn in reversed(lfns):
            storage.put(path, lfn)
        listed = storage.list(f"{base}/a")
        expected = sorted(lfn for lfn in lfns if lfn.startswith(f"{base}/a/"))
        assert [f.lfn for f in listed] == expected
        assert len(listed) == 123
        assert all(f.size == 7 and f.adler32 == _adler(b"payload") for f in listed)
        assert [f.lfn for f in storage.list(f"{base}/a/")] == expected
        assert [f.lfn for f in storage.list(base)] == sorted(lfns)
        assert storage.list(f"{base}/nothing") == []
        assert storage.list(f"{base}/a/f000.h5") == []

    def test_overwrite_put_replaces(
        self, storage: Storage, lfn_base: str, src: MakeFile, tmp_path: Path
    ) -> None:
        lfn = f"{lfn_base}/over/file.h5"
        storage.put(src(b"first version"), lfn)
        info = storage.put(src(b"second"), lfn)
        assert storage.stat([lfn])[lfn] == info == FileInfo(lfn, 6, _adler(b"second"))
        assert [f.lfn for f in storage.list(f"{lfn_base}/over")] == [lfn]
        storage.get(lfn, tmp_path / "got.h5")
        assert (tmp_path / "got.h5").read_bytes() == b"second"

    def test_remove(self, storage: Storage, lfn_base: str, src: MakeFile, tmp_path: Path) -> None:
        lfns = [f"{lfn_base}/rm/f{i}.h5" for i in range(4)]
        for lfn in lfns:
            storage.put(src(b"data"), lfn)
        storage.remove([lfns[0], lfns[2], f"{lfn_base}/rm/never-existed.h5"])
        assert [f.lfn for f in storage.list(f"{lfn_base}/rm")] == [lfns[1], lfns[3]]
        assert set(storage.stat(lfns)) == {lfns[1], lfns[3]}
        with pytest.raises(StorageError):
            storage.get(lfns[0], tmp_path / "gone.h5")
        storage.remove([])

    def test_get_missing_raises_and_writes_nothing(
        self, storage: Storage, lfn_base: str, tmp_path: Path
    ) -> None:
        dest = tmp_path / "out" / "missing.h5"
        dest.parent.mkdir()
        with pytest.raises(StorageError) as err:
            storage.get(f"{lfn_base}/no/such/file.h5", dest)
        assert "/no/such/file.h5" in err.value.detail
        assert list(dest.parent.iterdir()) == []

    def test_failed_get_keeps_existing_dest(self, storage: Storage, lfn_base: str, tmp_path: Path) -> None:
        dest = tmp_path / "dl" / "kept.h5"
        dest.parent.mkdir()
        dest.write_bytes(b"what the user had")
        with pytest.raises(StorageError):
            storage.get(f"{lfn_base}/no/such/kept.h5", dest)
        assert dest.read_bytes() == b"what the user had"
        assert [p.name for p in dest.parent.iterdir()] == ["kept.h5"]

    @pytest.mark.parametrize("bad", BAD_LFNS)
    def test_bad_lfns_refused(self, storage: Storage, src: MakeFile, tmp_path: Path, bad: str) -> None:
        path = src(b"data")
        with pytest.raises(StorageError):
            storage.put(path, bad)
        with pytest.raises(StorageError):
            storage.get(bad, tmp_path / "out.h5")
        with pytest.raises(StorageError):
            storage.stat([bad])
        with pytest.raises(StorageError):
            storage.remove([bad])
        with pytest.raises(StorageError):
            storage.list(bad)
        assert not (tmp_path / "out.h5").exists()

    def test_put_of_missing_source_raises(self, storage: Storage, lfn_base: str, tmp_path: Path) -> None:
        lfn = f"{lfn_base}/nosrc/file.h5"
        with pytest.raises(StorageError):
            storage.put(tmp_path / "does-not-exist.h5", lfn)
        with pytest.raises(StorageError):
            storage.put(tmp_path / "does-not-exist.h5", lfn, move=True)
        assert storage.stat([lfn]) == {}

    def test_put_move_consumes_the_source(
        self, storage: Storage, lfn_base: str, src: MakeFile, tmp_path: Path
    ) -> None:
        data = os.urandom(50_000)
        lfn = f"{lfn_base}/move/file.h5"
        path = src(data)
        info = storage.put(path, lfn, move=True)
        assert info == FileInfo(lfn, len(data), _adler(data)) == storage.stat([lfn])[lfn]
        assert not path.exists()
        assert storage.get(lfn, tmp_path / "back.h5") == info
        assert (tmp_path / "back.h5").read_bytes() == data
        replaced = storage.put(src(b"second"), lfn, move=True)
        assert replaced == FileInfo(lfn, 6, _adler(b"second")) == storage.stat([lfn])[lfn]
        storage.get(lfn, tmp_path / "back.h5")
        assert (tmp_path / "back.h5").read_bytes() == b"second"
        assert list((tmp_path / "src").iterdir()) == []

    @pytest.mark.parametrize("bad", BAD_LFNS[:2])
    def test_put_move_that_fails_keeps_the_source(self, storage: Storage, src: MakeFile, bad: str) -> None:
        path = src(b"keep me")
        with pytest.raises(StorageError):
            storage.put(path, bad, move=True)
        assert path.read_bytes() == b"keep me"

    def test_close_may_be_called_more_than_once(self, storage: Storage, lfn_base: str, src: MakeFile) -> None:
        """`close()` ends the use of a storage; calling it again (e.g. from a fixture) is harmless."""
        storage.put(src(b"before close"), f"{lfn_base}/close/file.h5")
        storage.close()
        storage.close()
