"""The site's own proof: gridpipe's shipped conformance suite, run on the site's backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gridpipe.analysis.create import CreateRequest, create_analysis
from gridpipe.backends.contract import Backend
from gridpipe.service.context import Analysis
from gridpipe.testing.backend_conformance import BackendConformance


class TestSiteBackend(BackendConformance):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> Iterator[Backend]:
        path = create_analysis(CreateRequest(name="conf", analyses_dir=tmp_path, backend="site")).path
        with Analysis.open(path) as analysis:
            yield analysis.backend
