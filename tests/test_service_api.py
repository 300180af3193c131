"""The service's API under use: kill and resubmit through the client while the service drives, and eight
clients reading status and job pages in a loop while it submits (no error, no lock timeout)."""

from __future__ import annotations

import random
import threading
import time

import httpx
from engine_helpers import make_analysis, slow_workflow
from service_helpers import running_service


def test_kill_then_resubmit_through_the_client(tmp_path):
    with running_service() as svc:
        path = make_analysis(
            tmp_path, {"gamma": 4, "proton": 1}, workflow=slow_workflow(tmp_path, 3), n_file_per_job=1
        )
        svc.analyses.append(path)
        svc.start()
        with svc.client() as client:
            client.add(path, max_active=5, poll_interval=0.1)
            deadline = time.monotonic() + 60
            while not [j for j in client.jobs(path, status=["running"])["jobs"]]:
                assert time.monotonic() < deadline
                time.sleep(0.1)
            killed = client.kill(path, stage="produce")
            assert killed["killed"], killed
            stalled = svc.wait_state(path, {"stalled"})
            assert "killed" in stalled["message"]
            again = client.resubmit(path, failed=True)
            assert set(again["submitted"]) == set(killed["killed"])
            svc.wait_state(path, {"complete"}, timeout=120)
            assert client.status(path)["stages"]["produce"] == {"gamma": {"done": 4}, "proton": {"done": 1}}
            refused = svc.cli("kill", "-a", path)  # nothing chosen: the CLI's own words
            assert refused.returncode == 2


def test_eight_clients_read_while_the_service_submits(tmp_path):
    with running_service() as svc:
        path = make_analysis(
            tmp_path, {"gamma": 60, "proton": 20}, workflow=slow_workflow(tmp_path, 0.05), n_file_per_job=1
        )
        svc.analyses.append(path)
        svc.start()
        problems: list[str] = []
        reads = [0]
        done = threading.Event()

        def reader(seed: int) -> None:
            rng = random.Random(seed)
            with svc.client() as client:
                while not done.is_set():
                    try:
                        status = client.status(path, limit=50)
                        page = client.jobs(
                            path, offset=rng.randrange(0, 80), limit=20, status=rng.choice([None, ["done"]])
                        )
                        assert page["total"] >= len(page["jobs"])
                        assert (
                            sum(
                                n
                                for units in status["stages"].values()
                                for c in units.values()
                                for n in c.values()
                            )
                            >= 0
                        )
                        client.queues()
                        reads[0] += 3
                    except Exception as exc:
                        problems.append(f"{type(exc).__name__}: {exc}")
                        return

        with svc.client() as client:
            client.add(path, max_active=10, poll_interval=0.05)
        threads = [threading.Thread(target=reader, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        try:
            svc.wait_state(path, {"complete", "error", "stalled"}, timeout=240)
        finally:
            done.set()
            for thread in threads:
                thread.join(60)
        assert problems == []
        assert reads[0] > 100
        with svc.client() as client:
            final = client.analysis(path)
            assert final["state"] == "complete", final
            assert client.status(path)["stages"]["produce"] == {"gamma": {"done": 60}, "proton": {"done": 20}}
            # pages sorted by the server, across pages
            for sort, key, newest_first in (("name", "name", False), ("updated", "updated", True)):
                rows = [
                    j
                    for offset in (0, 30, 60)
                    for j in client.jobs(path, sort=sort, offset=offset, limit=30)["jobs"]
                ]
                values = [j[key] for j in rows]
                assert len(rows) == 81 and values == sorted(values, reverse=newest_first), sort
            # throughput and time to completion: every job done within the hour, nothing left
            (produce, summarise) = client.pace(path, window=3600, buckets=12)["stages"]
            assert (produce["stage"], produce["done"], produce["remaining"]) == ("produce", 80, 0)
            assert (
                produce["done_in_window"] == 80
                and sum(produce["series"]) == 80
                and len(produce["series"]) == 12
            )
            assert produce["per_hour"] > 0 and produce["eta_seconds"] == 0
            assert (summarise["done"], summarise["remaining"]) == (1, 0)
        log = svc.cli("service", "logs", "-n", "2000").stdout
        assert "locked" not in log and "Traceback" not in log


def test_events_stream_as_server_sent_events(tmp_path):
    with running_service() as svc:
        path = make_analysis(tmp_path, {"gamma": 2, "proton": 1}, n_file_per_job=1)
        svc.analyses.append(path)
        svc.start()
        with svc.client() as client:
            client.add(path, poll_interval=0.05, paused=True)
            stream = client.events(path)  # follows: events arrive as they happen
            first = next(stream)
            assert first["id"] == 0 and first["text"] == "added (paused)" and first["time"]
            client.resume(path)
            seen = [next(stream)["text"] for _ in range(2)]
            assert seen[0] == "starting"
            stream.close()
            svc.wait_state(path, {"complete"})
            kept = list(client.events(path, follow=False))
            assert [e["id"] for e in kept] == list(range(len(kept)))
            assert kept[-1]["text"] == "complete: the analysis is complete"
            later = list(client.events(path, after=3, follow=False))
            assert later == kept[3:]
            with httpx.Client(
                transport=httpx.HTTPTransport(uds=str(svc.state.socket)), base_url="http://s"
            ) as http:
                raw = http.get(
                    f"/v1/analyses/{client.analysis(path)['id']}/events", params={"follow": "false"}
                )
                assert raw.headers["content-type"].startswith("text/event-stream")
                assert raw.text.startswith("id: 0\nevent: analysis\ndata: {")
