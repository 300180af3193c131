"""The local backend passes the backend conformance suite."""

from __future__ import annotations

import pytest
from engine_helpers import make_analysis

from gridpipe.service.context import Analysis
from gridpipe.testing.backend_conformance import BackendConformance


class TestLocalBackend(BackendConformance):
    @pytest.fixture
    def backend(self, tmp_path):
        an = Analysis.open(make_analysis(tmp_path, {"gamma": 1}))
        yield an.backend
        an.close()
