"""The service watches the DIRAC token (a real DiracX server on loopback): near its end, submission pauses
with a warning (API, CLI) and nothing is sent; once the user has renewed it, submission resumes."""

from __future__ import annotations

import time
from datetime import timedelta

from service_helpers import running_service
from test_dirac_backend import dirac_analysis, jdl_posts, on_server


def test_a_token_near_its_end_pauses_submission_until_renewed(diracx, tmp_path):
    creds = tmp_path / "credentials.json"
    diracx.mint_credentials(creds, lifetime=timedelta(minutes=4))  # min_token_validity is 10 minutes
    path = dirac_analysis(tmp_path, diracx, "dxwatch", 2, credentials_path=str(creds))
    posts = jdl_posts(diracx)
    with running_service() as svc:
        svc.start()
        added = svc.cli("service", "add", path, "--poll-interval", "0.2")
        assert added.returncode == 0, added.stderr
        with svc.client() as client:
            deadline = time.monotonic() + 60
            while not (view := client.analysis(path))["warning"]:
                assert time.monotonic() < deadline, view
                time.sleep(0.1)
            assert view["state"] == "running"
            assert "dirac login" in view["warning"] and "has only" in view["warning"]
            shown = svc.cli("service", "status")
            assert "warning: submission paused:" in shown.stdout and "dirac login" in shown.stdout
            token = creds.read_text()
            assert token not in shown.stdout + svc.cli("service", "logs", "-n", "500").stdout
            time.sleep(1)
            assert on_server(diracx, path) == [] and jdl_posts(diracx) == posts

            diracx.mint_credentials(creds, lifetime=timedelta(hours=1))  # the user renewed it
            deadline = time.monotonic() + 60
            while len(on_server(diracx, path)) < 2:
                assert time.monotonic() < deadline, client.analysis(path)
                time.sleep(0.2)
            assert client.analysis(path)["warning"] is None
            texts = [e["text"] for e in client.analysis(path)["events"]]
            assert any(t.startswith("submission paused:") for t in texts) and "submission resumed" in texts
        assert len({job["JobName"] for job in on_server(diracx, path)}) == 2
        assert svc.cli("service", "remove", path).returncode == 0
