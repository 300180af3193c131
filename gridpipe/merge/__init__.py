"""HDF5 table merging: many small PyTables files of one layout into one file. Imports only `gridpipe.core`.

`merge_files` walks the whole tree of the first readable input and requires every input to have the
same nodes with the same table columns (names, types, shapes) before anything is written. Tables,
EArrays and VLArrays are concatenated; fixed-size arrays, attributes and links come from the first
input. Empty, corrupt or unreadable inputs are skipped and listed in the report (`strict` makes them
an error): each input's layout is read and its leaves' last chunks checked (by their Fletcher-32
checksum where the pipeline has one, else by decoding the last row); an input that passes but fails
while being merged is an error naming it, and nothing is kept. The output is written to a temp file beside it, reopened to check that every row count is
the sum of the inputs', and only then renamed into place.

Copy mode moves compressed chunks without decompressing them where chunk shape, filter pipeline and
on-disk type are identical, and re-encodes only the partial last chunk of each input (or whole inputs
whose storage differs); see `gridpipe.merge.appender` for the row-order consequence and `keep_order`,
and `gridpipe.merge.plain` for re-encoded chunks stored uncompressed (filter mask, Fletcher-32 kept).
Inputs are read with h5py (hdf5plugin, when installed, gives it PyTables' blosc/bzip2 filters; rows it
cannot decode go through PyTables); the output is created and written with PyTables so that PyTables
and pandas read it as they read the inputs. Raw copy cannot notice damaged compressed bytes inside an
otherwise valid input: downloads are checksummed before they reach the merge. VDS mode writes a
virtual-dataset index over the inputs instead (see `gridpipe.merge.vds`).
"""

from gridpipe.merge.merge import merge_files
from gridpipe.merge.report import MergeMode, MergeReport, SkippedInput

__all__ = ["MergeMode", "MergeReport", "SkippedInput", "merge_files"]
