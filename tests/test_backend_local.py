"""The local backend passes the backend conformance suite."""

from __future__ import annotations

import pytest
from backend_conformance import BackendConformance
from engine_helpers import make_analysis

from gridpipe.service.context import Analysis


class TestLocalBackend(BackendConformance):
    @pytest.fixture
    def backend(self, tmp_path):
        an = Analysis.open(make_analysis(tmp_path, {"gamma": 1}))
        yield an.backend
        an.close()
