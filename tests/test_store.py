"""The job store: migrations, the append-only event log, the submission protocol's guards."""

from __future__ import annotations

import sqlite3

import pytest

from gridpipe.core.exceptions import DatabaseFileError
from gridpipe.core.models import BackendStatus, JobSpec
from gridpipe.core.states import JobStatus
from gridpipe.store import JobStore
from gridpipe.store.schema import MIGRATIONS, SCHEMA_VERSION


def _spec(name: str) -> JobSpec:
    return JobSpec(name=name, stage="s", unit="u", commands=(("true",),))


def test_an_old_database_is_migrated_and_a_newer_one_refused(tmp_path):
    db = tmp_path / "state.db"
    conn = sqlite3.connect(db)  # a store as version 1 made it, with one attempt
    conn.executescript(MIGRATIONS[0])
    conn.execute(
        "INSERT INTO jobs (name, stage, unit, spec, status, updated) VALUES ('j', 's', 'u', '{}', 'done', 't')"
    )
    conn.execute(
        "INSERT INTO attempts (job_id, number, backend, status, submitted) VALUES (1, 1, 'local', 'done', 't')"
    )
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    store = JobStore(db)  # version 1 -> current
    indexes = {row[1] for row in store._conn.execute("PRAGMA index_list(jobs)")}
    assert "jobs_by_backend_id" in indexes
    assert store.counts() == {"s": {"u": {"done": 1}}}  # counted when the counts table was made
    assert "attempts_by_status_ended" in {
        row[1] for row in store._conn.execute("PRAGMA index_list(attempts)")
    }
    assert [row[11] for row in store.attempt_rows()] == [None]  # the old attempt: no start time known
    assert store._conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    store.close()
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(DatabaseFileError, match="newer than this gridpipe"):
        JobStore(db)


def test_event_log_is_append_only_and_timezone_aware(tmp_path):
    with JobStore(tmp_path / "state.db") as store:
        store.add_jobs([_spec("a")])
        events = store.events("a")
        assert [e.kind for e in events] == ["planned"]
        assert events[0].ts.endswith("+00:00")
        for sql in ("DELETE FROM events", "UPDATE events SET kind = 'x'"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                store._conn.execute(sql)


def test_only_jobs_still_submitting_are_confirmed_or_reverted(tmp_path):
    with JobStore(tmp_path / "state.db") as store:
        store.add_jobs([_spec("a"), _spec("b")])
        store.begin_attempts(["a", "b"], "local")
        store.confirm_submitted({"a": "1"})
        store.revert_unsubmitted(["a", "b"], "lost")  # a was confirmed meanwhile: it must stay queued
        jobs = store.get(["a", "b"])
        assert jobs["a"].status == JobStatus.QUEUED and jobs["a"].backend_id == "1"
        assert jobs["b"].status == JobStatus.PLANNED and jobs["b"].attempts == 0
        store.confirm_submitted({"b": "2"})  # b is planned, not submitting: ignored
        assert store.get(["b"])["b"].status == JobStatus.PLANNED


def test_status_updates_touch_only_changed_jobs_of_that_backend(tmp_path):
    with JobStore(tmp_path / "state.db") as store:
        store.add_jobs([_spec("a"), _spec("b")])
        store.begin_attempts(["a", "b"], "local")
        store.confirm_submitted({"a": "1", "b": "2"})
        changed = store.apply_statuses(
            "local",
            [BackendStatus("1", JobStatus.RUNNING, site="here"), BackendStatus("2", JobStatus.QUEUED)],
        )
        assert changed == [("a", JobStatus.RUNNING)]
        assert store.apply_statuses("dirac", [BackendStatus("1", JobStatus.DONE)]) == []
        assert store.apply_statuses("local", [BackendStatus("1", JobStatus.RUNNING)]) == []
        assert store.get(["a"])["a"].site == "here"
        assert store.counts() == {"s": {"u": {"running": 1, "queued": 1}}}


def test_kept_counts_equal_a_count_of_the_jobs(tmp_path):
    def counted(store: JobStore) -> dict[str, dict[str, dict[str, int]]]:
        out: dict[str, dict[str, dict[str, int]]] = {}
        sql = "SELECT stage, unit, status, COUNT(*) FROM jobs GROUP BY stage, unit, status"
        for stage, unit, status, n in store._conn.execute(sql):
            out.setdefault(stage, {}).setdefault(unit, {})[status] = n
        return out

    with JobStore(tmp_path / "state.db") as store:
        store.add_jobs([_spec(f"j{i}") for i in range(6)])
        store.add_jobs([_spec("j0"), JobSpec(name="k", stage="t", unit="v", commands=(("true",),))])
        store.begin_attempts(["j0", "j1", "j2", "j3"], "local")
        store.confirm_submitted({"j0": "1", "j1": "2", "j2": "3"})
        store.revert_unsubmitted(["j3"], "lost")
        store.apply_statuses(
            "local", [BackendStatus("1", JobStatus.DONE), BackendStatus("2", JobStatus.FAILED)]
        )
        store.set_status(["j1", "k"], JobStatus.PLANNED)
        store.set_status(["j4"], JobStatus.DONE, "output already in storage")
        assert store.counts() == counted(store)
        assert store.counts() == {
            "s": {"u": {"planned": 3, "done": 2, "queued": 1}},
            "t": {"v": {"planned": 1}},
        }
        assert store.unit_counts("s") == {"u": 6}
        store._conn.execute("DELETE FROM jobs WHERE name = 'k'")
        assert store.counts() == counted(store) and "t" not in store.counts()


def test_an_attempt_keeps_the_start_its_backend_reported_else_when_it_was_first_seen_running(tmp_path):
    with JobStore(tmp_path / "state.db") as store:
        store.add_jobs([_spec("a"), _spec("b"), _spec("c")])
        store.begin_attempts(["a", "b", "c"], "local")
        store.confirm_submitted({"a": "1", "b": "2", "c": "3"})
        reported = "2026-01-02T03:04:05+00:00"
        store.apply_statuses(
            "local",
            [
                BackendStatus("1", JobStatus.RUNNING, started=reported),
                BackendStatus("2", JobStatus.RUNNING),  # the backend does not know: first seen running
                BackendStatus("3", JobStatus.DONE),  # never seen running, no start reported
            ],
        )
        seen = {row[0]: row[11] for row in store.attempt_rows()}
        assert seen["a"] == reported and seen["c"] is None
        assert seen["b"] and seen["b"] > reported
        later = "2030-01-01T00:00:00+00:00"
        store.apply_statuses(
            "local", [BackendStatus("1", JobStatus.DONE, started=later), BackendStatus("2", JobStatus.DONE)]
        )
        again = {row[0]: (row[11], row[12]) for row in store.attempt_rows()}
        assert again["a"][0] == reported and again["b"][0] == seen["b"]  # the first start is kept
        assert all(ended for _, ended in again.values())


def test_grid_outputs_are_read_from_the_specs_of_grid_jobs_with_outputs(tmp_path):
    grid = JobSpec(name="g", stage="s", unit="u", commands=(("true",),), outputs=("/a/x.h5", "/a/y.h5"))
    local = JobSpec(name="l", stage="s", unit="u", commands=(("true",),), outputs=("/tmp/m",), where="local")
    bare = _spec("n")  # a grid job without outputs
    with JobStore(tmp_path / "state.db") as store:
        store.add_jobs([grid, local, bare])
        # a spec stored before `where` was written is a grid job
        store._conn.execute("UPDATE jobs SET spec = json_remove(spec, '$.where') WHERE name = 'g'")
        assert store.grid_outputs(["g", "l", "n", "unknown"]) == {"g": ["/a/x.h5", "/a/y.h5"]}
        assert store.grid_outputs([]) == {}
