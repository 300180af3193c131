"""gridpipe's version (read by the build from here; `gridpipe.__version__` re-exports it)."""

__version__ = "0.1.0"
