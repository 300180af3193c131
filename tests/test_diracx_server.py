"""Smoke tests of the DiracX test server itself, and of the client behaviours the DIRAC backend relies on."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest

pytest.importorskip("diracx.testing")
pytest.importorskip("diracx.api")
pytest.importorskip("moto")

import httpx2
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ServiceRequestError
from diracx.api.jobs import download_sandbox
from diracx.client.models import JobStatusUpdate
from diracx.client.sync import SyncDiracClient
from diracx.core.preferences import DiracxPreferences
from diracx_server import DiracxServer, free_port, running_server, search_all, search_page

from gridpipe.core.timeutil import isoformat, utcnow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    with running_server(tmp_path_factory.mktemp("diracx")) as srv:
        yield srv


def jdls(group: str, count: int, prefix: str = "job") -> list[str]:
    line = 'Executable = "echo"; Arguments = "{i}"; JobName = "{prefix}_{i:04d}"; JobGroup = "{group}";'
    return [line.format(i=i, prefix=prefix, group=group) for i in range(count)]


def submit(server: DiracxServer, group: str, count: int) -> list[int]:
    """Submit `count` jobs as the normal user, batched by 20; return their ids."""
    texts, ids = jdls(group, count), []
    with server.client(server.user_credentials) as c:
        for start in range(0, count, 20):
            ids += [job.job_id for job in c.jobs.submit_jdl_jobs(texts[start : start + 20])]
    return ids


def by_id(ids: list[int]) -> list[dict]:
    return [{"parameter": "JobID", "operator": "in", "values": ids}]


def test_server_ready_and_secrets_private(server: DiracxServer) -> None:
    with urllib.request.urlopen(f"{server.url}/api/health/ready", timeout=5) as resp:
        assert resp.status == 200
    for path in (server.user_credentials, server.admin_credentials, server.base_dir / "jwks.json"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    saved = json.loads(server.user_credentials.read_text())
    assert set(saved) == {"access_token", "refresh_token", "expires_on"} and saved["refresh_token"] is None


def test_relative_base_dir_refused() -> None:
    with pytest.raises(ValueError, match="absolute"):
        DiracxServer(Path("relative/dir"))


def test_submit_45_in_batches_of_20_and_21_refused(server: DiracxServer) -> None:
    with server.client(server.user_credentials) as c:
        with pytest.raises(HttpResponseError) as info:
            c.jobs.submit_jdl_jobs(jdls("smoke-21", 21))
        assert info.value.status_code == 400 and "more than 20 jobs" in str(info.value)
        assert search_all(c, [{"parameter": "JobGroup", "operator": "eq", "value": "smoke-21"}]) == []
    ids = submit(server, "smoke-45", 45)
    assert len(set(ids)) == 45
    with server.client(server.user_credentials) as c:
        pages = [search_page(c, by_id(ids), ["JobID", "Status"], page=p, per_page=20) for p in (1, 2, 3)]
    assert [len(rows) for rows, _ in pages] == [20, 20, 5] and {total for _, total in pages} == {45}
    assert [row["JobID"] for rows, _ in pages for row in rows] == sorted(ids)
    assert {row["Status"] for rows, _ in pages for row in rows} == {"Received"}


def test_default_search_silently_truncates_to_100(server: DiracxServer) -> None:
    ids = submit(server, "smoke-150", 150)
    with server.client(server.user_credentials) as c:
        seen: dict = {}

        def keep(pipeline_response, rows, headers):
            seen.update(status=pipeline_response.http_response.status_code, headers=headers)
            return rows

        rows = c.jobs.search(search=by_id(ids), cls=keep)
        assert len(rows) == 100 and seen == {"status": 206, "headers": {"Content-Range": "jobs 0-99/150"}}
        assert len(search_all(c, by_id(ids), ["JobID"], per_page=64)) == 150
        with pytest.raises(HttpResponseError) as info:
            c.jobs.search(search=by_id(ids), page=3, per_page=100)
        assert info.value.status_code == 416
    assert len(server.search_by_names("smoke-150")) == 150
    assert len(server.search_by_names("smoke-150", names=["job_0007", "job_0149", "nope"])) == 2


def test_walk_to_done_and_failed_with_site_and_minor_status(server: DiracxServer) -> None:
    ids = submit(server, "smoke-walk", 6)
    server.walk(ids[:3], "Done", site="LCG.CERN.cern")
    server.walk(ids[3:], "Failed", site="LCG.DESY.de", minor_status="Application Finished With Errors")
    with server.client(server.user_credentials) as c:
        rows = search_all(c, by_id(ids), ["JobID", "Status", "MinorStatus", "Site"])
        summary = c.jobs.summary(grouping=["Status"], search=by_id(ids))
        history = search_all(c, by_id(ids[:1]), ["LoggingInfo"])[0]["LoggingInfo"]
    assert [(r["Status"], r["MinorStatus"], r["Site"]) for r in rows] == (
        [("Done", "Execution Complete", "LCG.CERN.cern")] * 3
        + [("Failed", "Application Finished With Errors", "LCG.DESY.de")] * 3
    )
    assert sorted(summary, key=lambda r: r["Status"]) == [
        {"Status": "Done", "count": 3},
        {"Status": "Failed", "count": 3},
    ]
    assert [h["Status"] for h in history] == [
        "Received",
        "Checking",
        "Waiting",
        "Matched",
        "Running",
        "Completing",
        "Done",
    ]
    with pytest.raises(ValueError, match="not on the path"):
        server.walk(ids[:1], "Running")


def test_invalid_transition_reported_as_success_but_ignored(server: DiracxServer) -> None:
    (job,) = submit(server, "smoke-invalid", 1)
    with server.client(server.user_credentials) as c:
        result = c.jobs.set_job_statuses({str(job): {isoformat(utcnow()): JobStatusUpdate(status="Running")}})
        assert str(job) in result.success and not result.failed
        assert search_all(c, by_id([job]), ["Status"])[0]["Status"] == "Received"
        with pytest.raises(HttpResponseError) as info:
            c.jobs.set_job_statuses(
                {str(job): {isoformat(utcnow()): JobStatusUpdate(status="Done")}}, force=True
            )
        assert info.value.status_code == 403


def test_output_sandbox_roundtrip(server: DiracxServer, tmp_path: Path) -> None:
    (job,) = submit(server, "smoke-sandbox", 1)
    server.walk([job], "Done")
    files = {"result.txt": b"hello grid\n", "table.bin": os.urandom(4096)}
    pfn = server.assign_output_sandbox(job, files)
    with server.client(server.user_credentials) as c:
        (short_pfn,) = c.jobs.get_job_sandbox(job, "output")  # without the "SB:SandboxSE|" prefix
    assert pfn == f"SB:SandboxSE|{short_pfn}"

    async def fetch() -> None:
        async with server.async_client(server.user_credentials) as ac:
            await download_sandbox(short_pfn, tmp_path, client=ac)

    asyncio.run(fetch())
    assert {name: (tmp_path / name).read_bytes() for name in files} == files


def test_user_kills_own_jobs(server: DiracxServer) -> None:
    ids = submit(server, "smoke-kill", 3)
    server.walk(ids[1:], "Running")
    stamp = isoformat(utcnow())
    with server.client(server.user_credentials) as c:
        kill = JobStatusUpdate(status="Killed", minor_status="Marked for termination", source="gridpipe")
        c.jobs.set_job_statuses({str(j): {stamp: kill} for j in ids})
        assert {r["Status"] for r in search_all(c, by_id(ids), ["Status"])} == {"Killed"}


@pytest.mark.parametrize("how", ["expired", "nearly_expired", "missing_file"])
def test_unusable_token_refused(server: DiracxServer, tmp_path: Path, how: str) -> None:
    creds = tmp_path / "creds.json"
    if how == "expired":
        server.mint_credentials(creds, expired=True)
    elif how == "nearly_expired":  # the client drops tokens with < 300 s left and sends none
        server.mint_credentials(creds, lifetime=timedelta(minutes=4))
    with server.client(creds) as c, pytest.raises(ClientAuthenticationError) as info:
        c.jobs.search(search=[], per_page=1)
    assert info.value.status_code == 401


def test_expired_token_sent_anyway_is_refused_by_server(server: DiracxServer, tmp_path: Path) -> None:
    creds = server.mint_credentials(tmp_path / "creds.json", expired=True)
    token = json.loads(creds.read_text())["access_token"]
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    url = f"{server.url}/api/jobs/search?per_page=1"
    request = urllib.request.Request(url, data=b"{}", method="POST", headers=headers)
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=5)
    assert info.value.code == 401 and b"Invalid JWT" in info.value.read()


def test_nothing_listening_raises_on_client_creation(server: DiracxServer) -> None:
    prefs = DiracxPreferences(url=f"http://127.0.0.1:{free_port()}", credentials_path=server.user_credentials)
    with pytest.raises(httpx2.ConnectError):  # the constructor fetches /.well-known/openid-configuration
        SyncDiracClient(diracx_preferences=prefs)


def test_restart_keeps_jobs_and_clients_reconnect(server: DiracxServer) -> None:
    ids = submit(server, "smoke-restart", 5)
    server.walk(ids[:2], "Running")
    with server.client(server.user_credentials) as c:
        server.kill_server()
        with pytest.raises(ServiceRequestError):
            c.jobs.search(search=by_id(ids), per_page=10)
        server.start_server()
        assert [r["Status"] for r in search_all(c, by_id(ids), ["Status"])] == ["Running"] * 2 + [
            "Received"
        ] * 3
    server.restart_server()
    server.walk(ids, "Killed")
    assert {r["Status"] for r in server.search_by_names("smoke-restart")} == {"Killed"}
