"""The contract every backend passes. Subclass `BackendConformance`, give it a `backend` fixture and say
how jobs are driven to an end (`drive`): the local backend runs them; a grid test plays the grid."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from gridpipe.backends.contract import Backend
from gridpipe.core.models import JobSpec
from gridpipe.core.states import ACTIVE_STATES, FINAL_STATES, JobStatus


class BackendConformance:
    """Reusable tests of gridpipe.backends.contract.Backend."""

    unknown_ids: tuple[str, ...] = ("987654321",)
    """Ids shaped like the backend's own that it never gave out (override if yours look different)."""

    @pytest.fixture
    def backend(self) -> Backend:
        """The backend under test (override)."""
        raise NotImplementedError("override the `backend` fixture")

    def spec(self, name: str, argv: Sequence[str], outdir: Path) -> JobSpec:
        """A job that runs `argv` and needs no storage."""
        return JobSpec(
            name=name,
            stage="conformance",
            unit="u",
            commands=(tuple(argv),),
            outputs=(str(outdir),),
            where="local",
        )

    def drive(self, backend: Backend, ids: Sequence[str], timeout: float = 60) -> dict[str, JobStatus]:
        """Wait until the jobs end (override to play the grid)."""
        deadline = time.monotonic() + timeout
        while True:
            statuses = {s.backend_id: s.status for s in backend.poll(ids)}
            if all(statuses.get(i) in FINAL_STATES for i in ids):
                return statuses
            assert time.monotonic() < deadline, f"jobs did not end: {statuses}"
            time.sleep(0.1)

    def test_submit_gives_an_id_per_job_and_poll_answers_for_all(
        self, backend: Backend, tmp_path: Path
    ) -> None:
        specs = [self.spec(f"conf-ok-{i}", ["true"], tmp_path) for i in range(5)]
        ids = backend.submit(specs)
        assert sorted(ids) == sorted(s.name for s in specs)
        assert len(set(ids.values())) == 5
        polled = backend.poll(list(ids.values()))
        assert sorted(s.backend_id for s in polled) == sorted(ids.values())
        assert all(s.status in ACTIVE_STATES | FINAL_STATES for s in polled)

    def test_success_and_failure_are_reported_with_a_reason(self, backend: Backend, tmp_path: Path) -> None:
        ids = backend.submit(
            [
                self.spec("conf-good", ["true"], tmp_path),
                self.spec("conf-bad", ["sh", "-c", "exit 3"], tmp_path),
            ]
        )
        statuses = self.drive(backend, list(ids.values()))
        assert statuses[ids["conf-good"]] == JobStatus.DONE
        assert statuses[ids["conf-bad"]] == JobStatus.FAILED
        bad = next(s for s in backend.poll([ids["conf-bad"]]))
        assert bad.reason

    def test_poll_of_unknown_ids_never_says_done(self, backend: Backend, tmp_path: Path) -> None:
        """An id the backend does not know is left out of the answer or reported failed, never done (nor
        active: nothing would ever end it); the known ids asked with it are answered as usual."""
        ids = backend.submit([self.spec("conf-known", ["true"], tmp_path)])
        known = ids["conf-known"]
        unknown = [i for i in self.unknown_ids if i != known]
        polled = backend.poll([*unknown, known])
        assert [s.backend_id for s in polled].count(known) == 1
        for status in polled:
            if status.backend_id != known:
                assert status.backend_id in unknown
                assert status.status == JobStatus.FAILED, status
        assert all(s.status != JobStatus.DONE for s in backend.poll(unknown))

    def test_lookup_finds_jobs_by_name_only(self, backend: Backend, tmp_path: Path) -> None:
        ids = backend.submit([self.spec("conf-find-me", ["true"], tmp_path)])
        found = backend.lookup(["conf-find-me", "conf-never-submitted"])
        assert [job.backend_id for job in found["conf-find-me"]] == [ids["conf-find-me"]]
        assert "conf-never-submitted" not in found

    def test_cancel_ends_a_job_as_killed_or_failed(self, backend: Backend, tmp_path: Path) -> None:
        ids = backend.submit([self.spec("conf-long", ["sleep", "60"], tmp_path)])
        backend.cancel([ids["conf-long"]])
        statuses = self.drive(backend, [ids["conf-long"]], timeout=30)
        assert statuses[ids["conf-long"]] in (JobStatus.KILLED, JobStatus.FAILED)

    def test_logs_hold_the_job_output(self, backend: Backend, tmp_path: Path) -> None:
        ids = backend.submit([self.spec("conf-echo", ["sh", "-c", "echo hello-conformance"], tmp_path)])
        self.drive(backend, list(ids.values()))
        logs = backend.logs(ids["conf-echo"])
        assert any("hello-conformance" in text for text in logs.values())

    def test_a_full_batch_is_accepted(self, backend: Backend, tmp_path: Path) -> None:
        size = min(backend.max_batch, 50)
        ids = backend.submit([self.spec(f"conf-batch-{i}", ["true"], tmp_path) for i in range(size)])
        assert len(ids) == size

    def test_close_may_be_called_more_than_once(self, backend: Backend, tmp_path: Path) -> None:
        """`close()` ends the use of a backend; calling it again (e.g. from a fixture) is harmless."""
        backend.submit([self.spec("conf-before-close", ["true"], tmp_path)])
        backend.close()
        backend.close()
