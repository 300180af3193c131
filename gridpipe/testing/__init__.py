"""Reusable pytest suites that every backend and storage must pass, gridpipe's own and a site's plugin alike.

Subclass `backend_conformance.BackendConformance` or `storage_conformance.StorageConformance` in a test
module, as `Test...`, and override its fixture (`backend` or `storage`). These modules import pytest:
only tests import them (`import gridpipe` never does). Call `pytest.register_assert_rewrite("gridpipe.testing")`
in your conftest.py for detailed assertion messages.
"""
