"""The built-in demo payload: a toy CTA-like analysis (simulate, training, models, DL2, performance).

It runs a whole protopipe-style chain on a laptop in seconds with numpy and PyTables only
(matplotlib for the one plot). Nothing here is real physics: the simulation is a toy model and the
"random forests" are light linear/logistic models (see linear.py), named after the configured
method only so that the workflow's file names match a real analysis.

Command line: `python -m gridpipe.payloads.demo ACTION` (see cli.py). Python API, imported lazily
so that the command line starts fast: `simulate_file`, `simulate_events`, `make_training_file`,
`train_model`, `make_dl2_file`, `make_performance`.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_API = {
    "simulate_file": "simulate",
    "simulate_events": "simulate",
    "SimulationResult": "simulate",
    "make_training_file": "training",
    "train_model": "models",
    "make_dl2_file": "dl2",
    "make_performance": "performance",
}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    """Import an API function from its module on first use."""
    if name in _API:
        return getattr(import_module(f"{__name__}.{_API[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
