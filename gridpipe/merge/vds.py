"""VDS mode: a small HDF5 file whose tables are virtual datasets over the inputs.

Nothing is copied, so the disk is not doubled, but the index only works while the inputs stay where
they are: sources are recorded relative to the output's folder, so the folder may move as a whole.
HDF5 returns fill values (zeros), without any error, for rows whose source file is missing.
PyTables (read only) and pandas `read_hdf` read the virtual tables like real ones; `ptrepack` turns
the index into a real file. Fixed-size arrays are copied from the first input; VLArrays cannot be
virtual (use copy mode).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import h5py

from gridpipe.core.exceptions import CannotMergeError
from gridpipe.merge.inputs import InputFile
from gridpipe.merge.layout import NodeSpec

VIRTUAL_KINDS = frozenset({"group", "table", "earray", "array", "softlink", "extlink"})


def _copy_attrs(src: h5py.HLObject, dst: h5py.HLObject) -> None:
    for name in src.attrs:
        dst.attrs.create(name, src.attrs[name], dtype=src.attrs.get_id(name).dtype)


def _full_shape(spec: NodeSpec) -> tuple[int, ...]:
    return (*spec.inner_shape[: spec.maindim], spec.nrows, *spec.inner_shape[spec.maindim :])


def _virtual(out: h5py.File, first: h5py.File, inputs: Sequence[InputFile], path: str, base: Path) -> None:
    """Create `path` in `out` as the concatenation of `path` in every input along its main dimension."""
    specs = [inp.nodes[path] for inp in inputs]
    axis, dtype = specs[0].maindim, first[path].dtype
    shape = list(_full_shape(specs[0]))
    shape[axis] = sum(s.nrows for s in specs)
    layout = h5py.VirtualLayout(shape=tuple(shape), dtype=dtype)
    start = 0
    for inp, spec in zip(inputs, specs, strict=True):
        index: list[slice] = [slice(None)] * len(shape)
        index[axis] = slice(start, start + spec.nrows)
        source = os.path.relpath(inp.path.resolve(), base)
        layout[tuple(index)] = h5py.VirtualSource(source, path, shape=_full_shape(spec), dtype=dtype)
        start += spec.nrows
    dset = out.create_virtual_dataset(path, layout)
    _copy_attrs(first[path], dset)
    if "NROWS" in dset.attrs:
        dset.attrs.create("NROWS", shape[axis], dtype=first[path].attrs.get_id("NROWS").dtype)


def _link(spec: NodeSpec) -> h5py.SoftLink | h5py.ExternalLink:
    if spec.kind == "softlink":
        return h5py.SoftLink(spec.target)
    filename, _, target = spec.target.partition(":")
    return h5py.ExternalLink(filename, target)


def write_vds(
    inputs: Sequence[InputFile], dest: Path, *, progress: Callable[[int, int], None] | None
) -> None:
    """Write `dest` as a virtual-dataset index over `inputs` (schemas already checked)."""
    for spec in inputs[0].nodes.values():
        if spec.kind not in VIRTUAL_KINDS or not spec.h5py_types:
            raise CannotMergeError(
                f"{inputs[0].path}: {spec.kind} {spec.path} cannot be virtual; use mode 'copy'"
            )
    base = dest.parent.resolve()
    with h5py.File(inputs[0].path, "r") as first, h5py.File(dest, "w") as out:
        _copy_attrs(first, out)
        for path, spec in inputs[0].nodes.items():
            if spec.kind == "group":
                _copy_attrs(first[path], out.create_group(path))
            elif spec.kind in ("table", "earray"):
                _virtual(out, first, inputs, path, base)
            elif spec.kind == "array":
                first.copy(first[path], out, name=path)
            else:
                out[path] = _link(spec)
    if progress is not None:
        progress(len(inputs), len(inputs))
