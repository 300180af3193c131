"""The layout of one HDF5 file as the merger sees it: every node, its kind, schema and storage.

Read with h5py, which opens a table about ten times faster than PyTables (PyTables builds a Python
column object per field). Node kinds follow PyTables: the CLASS attribute when present, else the
same guess PyTables makes (compound -> table, variable length -> VLArray, extendible -> EArray).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import h5py
import numpy as np
import tables
from tables.path import isvisiblename

from gridpipe.merge.dtypes import Interner, columns_of, h5_columns, h5_types
from gridpipe.merge.fletcher import FLETCHER32, checksum_matches

try:  # registers blosc, blosc2, bzip2, zstd... in h5py's HDF5, so PyTables' filters decode here too
    import hdf5plugin  # noqa: F401
except ImportError:  # pragma: no cover - then rows with those filters are decoded through PyTables
    pass

NodeKind = Literal["group", "table", "earray", "vlarray", "array", "softlink", "extlink"]
CONCAT_KINDS: frozenset[str] = frozenset({"table", "earray", "vlarray"})
_CLASSES: dict[str, NodeKind] = {
    "TABLE": "table",
    "EARRAY": "earray",
    "VLARRAY": "vlarray",
    "CARRAY": "array",
    "ARRAY": "array",
}


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """One node: what must match across inputs (`schema`) and what allows raw chunk copy (`storage`)."""

    path: str
    kind: NodeKind
    columns: tuple[tuple[str, str], ...] = ()
    inner_shape: tuple[int, ...] = ()
    maindim: int = 0
    nrows: int = 0
    chunkshape: tuple[int, ...] | None = None
    pipeline: tuple[tuple[int, int, tuple[int, ...]], ...] = ()
    disk_type: bytes = b""
    h5py_types: bool = True
    target: str = ""

    @property
    def schema(self) -> tuple[object, ...]:
        """What every input must agree on for this node to be merged."""
        return (self.kind, self.columns, self.inner_shape, self.maindim)

    @property
    def storage(self) -> tuple[object, ...]:
        """Leaves with equal `storage` have byte-identical chunk layouts: their chunks can be copied raw."""
        return (self.chunkshape, self.pipeline, self.disk_type)

    @property
    def decodable(self) -> bool:
        """Whether h5py can decode the rows (types and filters), else PyTables does."""
        return self.h5py_types and all(h5py.h5z.filter_avail(fid) for fid, _, _ in self.pipeline)

    def raw_copy_possible(self) -> bool:
        """Raw copy needs chunks along dim 0 spanning every other dimension (and no VLArray heap data)."""
        if self.kind not in ("table", "earray") or self.chunkshape is None or self.maindim != 0:
            return False
        return tuple(self.chunkshape[1:]) == self.inner_shape


def _attr(dsid: h5py.h5d.DatasetID, name: bytes) -> Any:
    """The attribute `name` of a dataset or None, read through h5py's low-level API when it is one
    fixed-size string (PyTables' CLASS: a third of the high-level cost) or a fixed-size scalar."""
    try:
        attr = h5py.h5a.open(dsid, name)
    except KeyError:
        return None
    disk = attr.get_type()
    if isinstance(disk, h5py.h5t.TypeStringID) and not disk.is_variable_str():
        if attr.get_storage_size() == disk.get_size():  # one string: its stored bytes as they are
            text = np.empty((), dtype=f"S{disk.get_size()}")
            attr.read(text, mtype=disk)
            return text[()]
    if attr.shape != () or attr.dtype.hasobject:
        return h5py.Dataset(dsid).attrs.get(name.decode())
    value = np.empty((), dtype=attr.dtype)
    attr.read(value)
    return value[()]


def _kind(dsid: h5py.h5d.DatasetID, disk: h5py.h5t.TypeID, unlimited: bool) -> NodeKind:
    cls = _attr(dsid, b"CLASS")
    if isinstance(cls, bytes | np.bytes_) and cls.decode() in _CLASSES:
        return _CLASSES[cls.decode()]
    type_class = disk.get_class()
    if type_class == h5py.h5t.COMPOUND:
        return "table"
    if type_class == h5py.h5t.VLEN:
        return "vlarray"
    return "earray" if unlimited else "array"


def _pipeline(plist: h5py.h5p.PropDCID) -> tuple[tuple[int, int, tuple[int, ...]], ...]:
    return tuple(
        (int(fid), int(flags), tuple(int(v) for v in values))
        for fid, flags, values, _ in (plist.get_filter(i) for i in range(plist.get_nfilters()))
    )


def dataset_spec(
    path: str, dsid: h5py.h5d.DatasetID, tables_dtype: Callable[[str], np.dtype], share: Interner
) -> NodeSpec:
    """The spec of one dataset; `tables_dtype` gives PyTables' dtype for types h5py cannot map."""
    space = dsid.get_space()
    shape = space.get_simple_extent_dims() if space.get_simple_extent_type() == h5py.h5s.SIMPLE else ()
    maxshape = space.get_simple_extent_dims(True) if shape else ()
    disk = dsid.get_type()
    kind = _kind(dsid, disk, h5py.h5s.UNLIMITED in maxshape)
    concat, table = kind in CONCAT_KINDS, kind == "table"
    maindim = 0
    if kind == "earray":
        extdim = _attr(dsid, b"EXTDIM")
        maindim = int(extdim) if extdim is not None else list(maxshape).index(h5py.h5s.UNLIMITED)
    disk_type = disk.encode()
    plist = dsid.get_create_plist()
    chunked = plist.get_layout() == h5py.h5d.CHUNKED
    try:
        dtype, h5py_types = h5_types(disk_type)[0], True
    except TypeError:  # an HDF5 type without numpy equivalent in h5py, e.g. PyTables' Time64
        dtype, h5py_types = tables_dtype(path), False
    return NodeSpec(
        path=path,
        kind=kind,
        columns=share(h5_columns(disk_type, table) if h5py_types else columns_of(dtype, table)),
        inner_shape=shape[:maindim] + shape[maindim + 1 :] if concat else shape,
        maindim=maindim,
        nrows=shape[maindim] if concat and shape else 0,
        chunkshape=plist.get_chunk() if chunked else None,
        pipeline=share(_pipeline(plist)),
        disk_type=share(disk_type),
        h5py_types=h5py_types,
    )


def read_rows(dsid: h5py.h5d.DatasetID, spec: NodeSpec, start: int, stop: int) -> np.ndarray:
    """Rows `start:stop` along the main dimension of a dataset h5py decodes (`spec.decodable`)."""
    dtype, mtype = h5_types(spec.disk_type)
    shape = list(dsid.shape)
    if dtype.subdtype is not None or dtype.hasobject or not shape:  # h5py reshapes or converts these
        index: list[Any] = [slice(None)] * len(shape)
        index[spec.maindim] = slice(start, stop)
        return np.asarray(h5py.Dataset(dsid)[tuple(index)])
    offset = [0] * len(shape)
    offset[spec.maindim], shape[spec.maindim] = start, max(0, min(stop, shape[spec.maindim]) - start)
    out = np.empty(shape, dtype=dtype)
    if out.size:
        fspace = dsid.get_space()
        fspace.select_hyperslab(tuple(offset), tuple(shape))
        dsid.read(h5py.h5s.create_simple(tuple(shape)), fspace, out, mtype)
    return out


def _last_chunk_start(shape: tuple[int, ...], chunks: tuple[int, ...], axis: int) -> tuple[int, ...]:
    start = [0] * len(shape)
    start[axis] = (shape[axis] - 1) // chunks[axis] * chunks[axis]
    return tuple(start)


def _last_chunk_checked(dsid: h5py.h5d.DatasetID, spec: NodeSpec, shape: tuple[int, ...]) -> bool:
    """Check the last chunk's stored bytes against their Fletcher-32 when it has one; False if not.

    The stored bytes are what the merge copies (raw) or decodes (a partial tail), so a matching
    checksum proves what decoding the last row proved, without decompressing: a tenth of the time.
    """
    if spec.chunkshape is None or not spec.pipeline or spec.pipeline[-1][0] != FLETCHER32:
        return False
    mask, stored = dsid.read_direct_chunk(_last_chunk_start(shape, spec.chunkshape, spec.maindim))
    if mask >> (len(spec.pipeline) - 1) & 1:  # written with the checksum skipped: decode instead
        return False
    if not checksum_matches(stored):
        raise ValueError(f"{spec.path}: its last chunk fails its Fletcher-32 checksum")
    return True


def probe(dsid: h5py.h5d.DatasetID, spec: NodeSpec) -> None:
    """Check a little of a dataset so damage shows before merging: its last chunk's checksum when the
    pipeline ends with Fletcher-32, else its last row decoded (or its last chunk read raw)."""
    shape = dsid.shape or ()
    if not shape or not shape[spec.maindim] or _last_chunk_checked(dsid, spec, shape):
        return
    last = shape[spec.maindim] - 1
    if spec.decodable:
        read_rows(dsid, spec, last, last + 1)
    elif spec.chunkshape is not None:
        dsid.read_direct_chunk(_last_chunk_start(shape, spec.chunkshape, spec.maindim))


def _read_only_access(*, locking: bool) -> h5py.h5p.PropFAID:
    plist = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    plist.set_fclose_degree(h5py.h5f.CLOSE_STRONG)  # closing the file closes its datasets, as h5py.File
    if not locking:
        plist.set_file_locking(False, True)
    return plist


_READ_ONLY = _read_only_access(locking=True)
_UNLOCKED = _read_only_access(locking=False)


def open_read_only(path: Path, *, locking: bool = True) -> h5py.h5f.FileID:
    """`path` opened with h5py's low-level API (close it with `.close()`, which closes its datasets):
    `h5py.File` and its close cost twice as much, ~0.15 ms a file, and every input is opened twice.

    `locking=False` reads a file that PyTables (another HDF5 library, with its own lock) holds open
    for writing; only sound once PyTables has flushed it and while it writes nothing more.
    """
    return h5py.h5f.open(os.fsencode(path), h5py.h5f.ACC_RDONLY, _READ_ONLY if locking else _UNLOCKED)


class _Walker:
    """Collects the specs of one open file; opens it with PyTables only for types h5py cannot map."""

    def __init__(
        self, path: Path, check: bool, stack: ExitStack, share: Interner, opened: tables.File | None
    ) -> None:
        self.path, self.check, self.stack, self.share = path, check, stack, share
        self.specs: dict[str, NodeSpec] = {}
        self._tables = opened

    def tables_dtype(self, node_path: str) -> np.dtype:
        if self._tables is None:
            self._tables = self.stack.enter_context(tables.open_file(str(self.path), "r"))
        node = self._tables.get_node(node_path)
        return node.dtype if isinstance(node, tables.Table) else node.atom.dtype

    def walk(self, group: h5py.h5g.GroupID, prefix: str = "") -> None:
        """Walk `group` (whose path is `prefix`, "" for the root) with h5py's low-level API: the
        high-level one costs ~0.3 ms more per leaf (name decoding, link objects, weak references)."""
        names: list[bytes] = []
        group.links.iterate(names.append)
        for raw in sorted(names):  # UTF-8 bytes sort as their text does
            name = raw.decode()
            if not isvisiblename(name):
                continue
            path = f"{prefix}/{name}"
            link_type = group.links.get_info(raw).type
            if link_type == h5py.h5l.TYPE_SOFT:
                self.specs[path] = NodeSpec(path, "softlink", target=group.links.get_val(raw).decode())
            elif link_type == h5py.h5l.TYPE_EXTERNAL:
                filename, target = group.links.get_val(raw)
                self.specs[path] = NodeSpec(
                    path, "extlink", target=f"{os.fsdecode(filename)}:{target.decode()}"
                )
            elif isinstance(node := h5py.h5o.open(group, raw), h5py.h5g.GroupID):
                self.specs[path] = NodeSpec(path, "group")
                self.walk(node, path)
            elif isinstance(node, h5py.h5d.DatasetID):
                self.specs[path] = dataset_spec(path, node, self.tables_dtype, self.share)
                if self.check:
                    probe(node, self.specs[path])
            else:  # a named datatype: PyTables cannot read the file either
                raise ValueError(f"{path} is a named datatype, not a dataset or group")


def read_layout(
    path: Path, *, check: bool = True, share: Interner | None = None, writing: tables.File | None = None
) -> dict[str, NodeSpec]:
    """Every visible node of `path` (parents first, names sorted) with its spec; `check` reads a little.

    Pass one `Interner` for many files of one layout so that they share their column lists.
    `writing`: `path` is open for writing in PyTables (flushed, see `open_read_only(locking=False)`),
    which then also gives the types h5py cannot map.
    """
    with ExitStack() as stack:
        walker = _Walker(path, check, stack, share or Interner(), writing)
        fid = open_read_only(path, locking=writing is None)
        stack.callback(fid.close)
        walker.walk(fid)
    return walker.specs
