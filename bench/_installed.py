"""The gridpipe under test as `pip install` leaves it: with its bytecode compiled.

`pip install .` compiles every module to bytecode at install time. A source checkout run with
PYTHONDONTWRITEBYTECODE=1 (as on CI machines) would instead compile gridpipe's modules on every start of
every command, which is not what users pay; benchmarks of command times call `compile_gridpipe` first.
"""

from __future__ import annotations

import compileall
import importlib.util
from pathlib import Path


def compile_gridpipe() -> str:
    """Write the bytecode of the gridpipe package that `python -m gridpipe` imports; say what was done."""
    spec = importlib.util.find_spec("gridpipe")
    if spec is None or spec.origin is None:
        raise SystemExit("gridpipe is not importable: install it first (pip install -e .)")
    package = Path(spec.origin).parent
    if not compileall.compile_dir(package, quiet=1, workers=1):
        raise SystemExit(f"compiling {package} to bytecode failed")
    return f"bytecode of {package} compiled, as `pip install` does"
