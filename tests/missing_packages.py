"""An environment in which `import diracx` fails for real, as where the `dirac` extra is not installed.

A site hook (sitecustomize on PYTHONPATH) refuses the import: the real interpreter, the real gridpipe, and
no stand-in for gridpipe's own code.
"""

from __future__ import annotations

from pathlib import Path

NO_DIRACX = '''
import sys


class _NoDiracx:
    """Imports of diracx fail exactly as where the `dirac` extra is not installed."""

    def find_spec(self, name, path=None, target=None):
        if name == "diracx" or name.startswith("diracx."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


for _name in [m for m in sys.modules if m == "diracx" or m.startswith("diracx.")]:
    del sys.modules[_name]
sys.meta_path.insert(0, _NoDiracx())
'''


def no_diracx_env(tmp_path: Path) -> dict[str, str]:
    """Environment variables for a subprocess that cannot import diracx."""
    hook = tmp_path / "no-diracx"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(NO_DIRACX)
    return {"PYTHONPATH": str(hook)}
