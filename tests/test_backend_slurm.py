"""The slurm backend against a real Slurm cluster: the conformance suite, states, reasons and logs."""

from __future__ import annotations

import pytest
from engine_helpers import make_analysis

from gridpipe.backends.slurm import SlurmBackend
from gridpipe.service.context import Analysis
from gridpipe.testing.backend_conformance import BackendConformance


def use_slurm(path, section: str = "") -> None:
    """Switch an analysis made by make_analysis to the slurm backend (with an optional backend.slurm)."""
    grid = path / "configs" / "grid.yaml"
    text = grid.read_text().replace('name: "local"\n  # Most', 'name: "slurm"\n  # Most', 1)
    grid.write_text(text + section)


@pytest.fixture
def slurm_analysis(slurm_cluster, tmp_path):
    path = make_analysis(tmp_path, {"gamma": 1})
    use_slurm(path)
    return path


class TestSlurmBackend(BackendConformance):
    @pytest.fixture
    def backend(self, slurm_analysis):
        an = Analysis.open(slurm_analysis)
        assert isinstance(an.backend, SlurmBackend)
        yield an.backend
        an.close()
