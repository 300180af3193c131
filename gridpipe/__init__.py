"""gridpipe: scaffold protopipe-style grid analyses and run them.

Heavy parts (workflow engine, backends, HDF5) are imported lazily so that the
command line starts fast.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
