"""The background service, for real: the daemon process, its state folder, HTTP over its Unix socket and
over loopback TCP, analyses on the local backend driven to the end, kill -9 and restart."""

from __future__ import annotations

import json
import os
import shutil
import stat
import time

import httpx
import pytest
from engine_helpers import make_analysis, slow_workflow, start_run
from service_helpers import running_service, wait_gone

from gridpipe.backends.local_queue import LocalQueue
from gridpipe.service.statedir import process_alive


def _ledger(path) -> list[str]:
    """Every start of a payload on the analysis's local backend, by job name."""
    queue = LocalQueue(path / ".gridpipe" / "local")
    try:
        return [name for _, name in queue.ledger()]
    finally:
        queue.close()


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_start_status_stop_and_its_files():
    with running_service() as svc:
        pid = svc.start()
        state = svc.state
        assert _mode(state.root) == 0o700
        assert _mode(state.info) == 0o600
        assert stat.S_ISSOCK(state.socket.stat().st_mode) and _mode(state.socket) == 0o600
        info = svc.info()
        assert info["pid"] == pid and len(info["token"]) >= 40 and info["version"]
        assert os.getsid(pid) != os.getsid(0), "the service has its own session (detached from the terminal)"
        assert os.getsid(pid) != pid, "the service is not a session leader (second fork)"

        again = svc.cli("service", "start")
        assert again.returncode == 0 and f"already running (process {pid}" in again.stdout
        assert svc.info()["pid"] == pid

        status = svc.cli("service", "status", "--json")
        assert status.returncode == 0, status.stderr
        shown = json.loads(status.stdout)
        assert shown["running"] and shown["pid"] == pid and shown["analyses"] == []
        assert "token" not in status.stdout and info["token"] not in status.stdout

        stop = svc.cli("service", "stop")
        assert stop.returncode == 0 and "stopped" in stop.stdout, stop.stderr
        assert not process_alive(pid)
        assert not state.socket.exists() and not state.info.exists()
        after = svc.cli("service", "status")
        assert after.returncode == 3 and "not running" in after.stdout
        assert "started (process" in svc.cli("service", "logs").stdout
        absent = svc.cli("service", "queues")
        assert absent.returncode == 2
        assert "no gridpipe service is running" in absent.stderr and "gridpipe service start" in absent.stderr


def test_detached_run_goes_to_the_end_and_the_run_lock_holds_both_ways(tmp_path):
    with running_service() as svc:
        slow = make_analysis(
            tmp_path / "a",
            {"gamma": 4, "proton": 1},
            workflow=slow_workflow(tmp_path, 1.0),
            n_file_per_job=1,
            name="slow",
        )
        other = make_analysis(tmp_path / "b", {"gamma": 2, "proton": 1}, n_file_per_job=1, name="other")
        svc.analyses += [slow, other]
        svc.start()
        detached = svc.cli("run", "--detach", "-a", slow, "--poll-interval", "0.1", "--max-active", "2")
        assert detached.returncode == 0, detached.stderr
        assert "the gridpipe service drives" in detached.stdout
        svc.wait_state(slow, {"running"})
        # a foreground run is refused while the service drives the analysis
        fore = svc.cli("run", "-a", slow)
        assert fore.returncode == 1
        assert "the gridpipe service (process" in fore.stderr and "service pause" in fore.stderr

        # the other way round: an analysis a foreground run drives is not taken by the service
        run = start_run(other)
        deadline = time.monotonic() + 30
        while (
            not (other / ".gridpipe" / "run.lock").exists()
            or not (other / ".gridpipe" / "run.lock").read_text()
        ):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        added = svc.cli("service", "add", other)
        if run.poll() is None:  # (the small run may have ended already)
            assert added.returncode == 1, added.stdout
            assert "another run (process" in added.stderr and str(other) in added.stderr
        run.communicate(timeout=120)

        done = svc.wait_state(slow, {"complete"})
        assert done["message"] == "the analysis is complete"
        status = json.loads(svc.cli("status", "--json", "-a", slow).stdout)
        assert status["stages"] == {
            "produce": {"gamma": {"done": 4}, "proton": {"done": 1}},
            "summarise": {"all": {"done": 1}},
        }
        assert (slow / "results" / "summary.txt").read_text() == "ok"


def test_pause_resume_remove(tmp_path):
    with running_service() as svc:
        path = make_analysis(
            tmp_path, {"gamma": 6, "proton": 1}, workflow=slow_workflow(tmp_path, 0.5), n_file_per_job=1
        )
        svc.analyses.append(path)
        svc.start()
        assert svc.cli("service", "add", path, "--paused", "--max-active", "1").returncode == 0
        assert svc.wait_state(path, {"paused"})["paused"] is True
        assert (
            not (path / ".gridpipe" / "state.db").exists()
            or not json.loads(svc.cli("status", "--json", "--no-refresh", "-a", path).stdout)["jobs"]
        )
        resumed = svc.cli("service", "resume", path)
        assert resumed.returncode == 0 and "resumed" in resumed.stdout, resumed.stderr
        svc.wait_state(path, {"running"})
        paused = svc.cli("service", "pause", path)
        assert paused.returncode == 0, paused.stderr
        # paused: the lock is free again, and a restart keeps it paused
        svc.cli("service", "stop")
        svc.start()
        assert svc.wait_state(path, {"paused"})["paused"] is True
        svc.cli("service", "resume", path)
        svc.wait_state(path, {"complete"})
        removed = svc.cli("service", "remove", path)
        assert removed.returncode == 0 and "removed" in removed.stdout
        with svc.client() as client:
            assert client.analyses() == []
        gone = svc.cli("service", "pause", path)
        assert gone.returncode == 1 and f"the service does not drive {path}" in gone.stderr


@pytest.mark.slow
def test_kill_9_mid_run_then_start_every_job_ran_exactly_once(tmp_path):
    with running_service() as svc:
        paths = [
            make_analysis(
                tmp_path / name,
                {"gamma": 12, "proton": 8},
                workflow=slow_workflow(tmp_path, 0.3),
                n_file_per_job=1,
                name=name,
            )
            for name in ("first", "second")
        ]
        svc.analyses += paths
        svc.start("--submission-workers", "1")
        for path in paths:
            assert (
                svc.cli("service", "add", path, "--max-active", "3", "--poll-interval", "0.05").returncode
                == 0
            )

        def started(path) -> int:
            db = path / ".gridpipe" / "local" / "queue.db"
            if not db.exists():
                return 0
            return len(_ledger(path))

        deadline = time.monotonic() + 120
        while min(started(p) for p in paths) < 3:
            assert time.monotonic() < deadline, "the service did not start the jobs"
            time.sleep(0.05)
        svc.kill_9()  # mid-run: jobs queued and running, more planned
        assert max(started(p) for p in paths) < 21, "the kill came too late to test anything"
        assert svc.state.info.exists(), "a killed service leaves its info file; the next start replaces it"
        svc.start()
        for path in paths:
            svc.wait_state(path, {"complete"}, timeout=240)
            names = _ledger(path)
            assert len(names) == 21 and len(set(names)) == 21, names
            status = json.loads(svc.cli("status", "--json", "-a", path).stdout)
            assert status["stages"] == {
                "produce": {"gamma": {"done": 12}, "proton": {"done": 8}},
                "summarise": {"all": {"done": 1}},
            }
            assert all(job["attempts"] == 1 for job in status["jobs"])


def test_one_broken_analysis_does_not_stop_the_others(tmp_path):
    with running_service() as svc:
        good = make_analysis(tmp_path / "g", {"gamma": 3, "proton": 1}, n_file_per_job=1, name="good")
        doomed = make_analysis(
            tmp_path / "d", {"gamma": 3}, workflow=slow_workflow(tmp_path, 2), name="doomed"
        )
        svc.analyses.append(good)
        svc.start()
        assert svc.cli("service", "add", doomed, "--paused").returncode == 0
        shutil.rmtree(doomed)  # it vanishes
        svc.cli("service", "resume", doomed)
        assert svc.cli("service", "add", good, "--poll-interval", "0.05").returncode == 0
        broken = svc.wait_state(doomed, {"error"})
        assert "the analysis folder is gone" in broken["message"]
        svc.wait_state(good, {"complete"})
        status = svc.cli("service", "status")
        assert "error" in status.stdout and "the analysis folder is gone" in status.stdout
        assert svc.cli("service", "remove", doomed).returncode == 0


def test_queues_show_every_lane_and_its_workers():
    with running_service() as svc:
        svc.start("--submission-workers", "3", "--transfers-workers", "1")
        shown = svc.cli("service", "queues", "--json")
        assert shown.returncode == 0, shown.stderr
        lanes = {lane["name"]: lane for lane in json.loads(shown.stdout)}
        assert list(lanes) == ["submission", "monitoring", "transfers"]
        assert [w["worker"] for w in lanes["submission"]["workers"]] == [
            "submission-1",
            "submission-2",
            "submission-3",
        ]
        assert lanes["transfers"]["size"] == 1 and lanes["monitoring"]["size"] == 4
        assert all(w["task"] is None for lane in lanes.values() for w in lane["workers"])
        assert "submission-1: idle" in svc.cli("service", "queues").stdout


def test_api_errors_name_the_field():
    with running_service() as svc:
        svc.start()
        transport = httpx.HTTPTransport(uds=str(svc.state.socket))
        with httpx.Client(transport=transport, base_url="http://svc") as http:
            cases = [
                (http.post("/v1/analyses", json={"path": "relative/x"}), 422, "body.path"),
                (
                    http.post("/v1/analyses", json={"path": "/x", "options": {"max_active": 0}}),
                    422,
                    "body.options.max_active",
                ),
                (http.post("/v1/analyses", json={"path": "/x", "shell": "rm -rf /"}), 422, "body.shell"),
                (http.post("/v1/analyses", json={"path": "/no/such/analysis"}), 404, "path"),
                (
                    http.post(
                        "/v1/analyses", content=b"{not json", headers={"content-type": "application/json"}
                    ),
                    422,
                    None,
                ),
                (http.get("/v1/analyses/../../etc"), 404, None),
                (http.get("/v1/analyses/ZZZ"), 422, "path.analysis_id"),
                (http.get("/v1/analyses/0123456789ab"), 404, "analysis_id"),
                (http.get("/v1/analyses/0123456789ab/jobs", params={"limit": 0}), 422, "query.limit"),
                (http.get("/v1/analyses/0123456789ab/jobs", params={"sort": "id; drop"}), 422, "query.sort"),
                (http.get("/v1/analyses/0123456789ab/pace", params={"window": 1}), 422, "query.window"),
                (http.get("/v1/nothing"), 404, None),
                (http.delete("/v1/analyses"), 405, None),
            ]
            for response, code, field in cases:
                assert response.status_code == code, (response.request.url, response.text)
                body = response.json()
                assert body["error"], body
                if field:
                    assert body["field"] == field, body
            schema = http.get("/v1/openapi.json").json()
            assert "/v1/analyses/{analysis_id}/jobs" in schema["paths"]


def test_tcp_needs_the_token_and_the_right_host():
    with running_service() as svc:
        svc.start("--http", "127.0.0.1:0")
        info = svc.info()
        base = f"http://{info['http']}"
        token = info["token"]
        with httpx.Client(base_url=base) as http:
            assert http.get("/v1/health").status_code == 401
            assert http.get("/v1/health", headers={"Authorization": "Bearer wrong"}).status_code == 401
            good = {"Authorization": f"Bearer {token}"}
            assert http.get("/v1/health", headers=good).json()["pid"] == info["pid"]
            foreign = http.get(
                "/v1/health", headers={**good, "Host": f"evil.example:{base.rsplit(':', 1)[1]}"}
            )
            assert foreign.status_code == 403 and foreign.json()["field"] == "Host"
            assert (
                "access-control-allow-origin"
                not in http.get("/v1/health", headers={**good, "Origin": "http://evil.example"}).headers
            )
            # the dashboard URL with the token, opened once: a cookie, then the page without the token
            first = http.get("/", params={"token": token})
            assert first.status_code == 303 and first.headers["location"] == "/"
            assert (
                "HttpOnly" in first.headers["set-cookie"] and "SameSite=Strict" in first.headers["set-cookie"]
            )
            cookie = {"gridpipe_token": token}
            page = httpx.get(f"{base}/", cookies=cookie)
            assert page.status_code == 200 and "<html" in page.text
            # actions by cookie need the X-Gridpipe header (no other site's page can send it)
            assert httpx.post(f"{base}/v1/shutdown", cookies=cookie).status_code == 403
            assert process_alive(info["pid"])
        stopped = svc.cli("service", "stop")
        assert stopped.returncode == 0
        wait_gone(info["pid"])


def test_a_non_loopback_address_needs_a_flag():
    with running_service() as svc:
        refused = svc.cli("service", "start", "--http", "0.0.0.0:0")
        assert refused.returncode == 2 and "--allow-remote" in refused.stderr
        assert not svc.state.info.exists()
