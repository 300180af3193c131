"""Throughput and time to completion per stage (gridpipe.service.pace): the pure arithmetic, and the
store's done attempts read through the window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gridpipe.core.models import BackendStatus, JobSpec
from gridpipe.core.states import JobStatus
from gridpipe.service.pace import DoneAttempt, pace
from gridpipe.service.report import duration_text
from gridpipe.store import JobStore

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _done(stage: str, submitted_min_ago: float, ended_min_ago: float) -> DoneAttempt:
    return DoneAttempt(
        stage, NOW - timedelta(minutes=submitted_min_ago), NOW - timedelta(minutes=ended_min_ago)
    )


def test_steady_rate_over_the_whole_window_and_the_time_left():
    counts = {"dl2": {"gamma": {"done": 120, "running": 10, "queued": 20, "planned": 30, "failed": 4}}}
    # 60 jobs done in the last hour, one a minute; they were submitted before the window began
    done = [_done("dl2", 90, m + 0.5) for m in range(60)]
    out = pace(counts, done, NOW, window_s=3600, buckets=6)
    (stage,) = out.stages
    assert stage.done == 120 and stage.remaining == 60 and stage.done_in_window == 60
    assert stage.per_hour == pytest.approx(60)
    assert stage.eta_seconds == pytest.approx(3600)  # 60 left at 60 an hour
    assert stage.series == (10, 10, 10, 10, 10, 10) and out.bucket_s == 600


def test_a_young_run_is_measured_from_its_first_submission_not_over_the_whole_window():
    counts = {"train": {"gamma": {"done": 10, "planned": 20}}}
    done = [_done("train", 10, m) for m in range(10)]  # submitted 10 min ago, 10 done since
    (stage,) = pace(counts, done, NOW, window_s=3600, buckets=4).stages
    assert stage.per_hour == pytest.approx(60)  # 10 in 10 minutes, not 10 in an hour
    assert stage.eta_seconds == pytest.approx(20 * 60)
    assert stage.series == (0, 0, 0, 10)


def test_nothing_done_in_the_window_means_no_rate_and_no_estimate_unless_nothing_is_left():
    counts = {"a": {"u": {"running": 3, "done": 5}}, "b": {"u": {"done": 4}}}
    old = [_done("a", 300, 200), _done("b", 300, 250)]  # ended before the window
    a, b = pace(counts, old, NOW, window_s=3600, buckets=2).stages
    assert (a.per_hour, a.eta_seconds, a.series) == (None, None, (0, 0))
    assert (b.remaining, b.eta_seconds) == (0, 0.0)  # complete


def test_every_stage_is_counted_on_its_own_and_units_add_up():
    counts = {
        "a": {"gamma": {"done": 2, "planned": 2}, "proton": {"done": 2, "running": 2}},
        "b": {"all": {"planned": 1}},
    }
    done = [_done("a", 30, 20), _done("a", 30, 10)]
    a, b = pace(counts, done, NOW, window_s=3600, buckets=3).stages
    assert (a.stage, a.done, a.remaining, a.done_in_window) == ("a", 4, 4, 2)
    assert a.per_hour == pytest.approx(4)  # 2 in the 30 minutes since their submission
    assert a.eta_seconds == pytest.approx(3600)
    assert (b.stage, b.remaining, b.per_hour, b.eta_seconds) == ("b", 1, None, None)


def test_a_job_done_a_moment_after_its_submission_does_not_give_an_absurd_rate():
    counts = {"a": {"u": {"done": 1, "planned": 9}}}
    (a,) = pace(counts, [DoneAttempt("a", NOW, NOW)], NOW, window_s=60, buckets=6).stages
    assert a.per_hour == pytest.approx(3600)  # measured over at least a second


def test_the_store_gives_the_done_attempts_of_the_window_only(tmp_path):
    spec = [JobSpec(name=n, stage="s", unit="u", commands=(("true",),)) for n in "abc"]
    with JobStore(tmp_path / "state.db") as store:
        store.add_jobs(spec)
        store.begin_attempts(["a", "b", "c"], "local")
        store.confirm_submitted({"a": "1", "b": "2", "c": "3"})
        before = datetime.now(UTC)
        store.apply_statuses(
            "local", [BackendStatus("1", JobStatus.DONE), BackendStatus("2", JobStatus.FAILED)]
        )
        rows = store.done_since((before - timedelta(seconds=1)).isoformat())
        ((stage, second, jobs, submitted),) = rows  # one done attempt in the window
        assert (stage, jobs) == ("s", 1) and submitted[:19] <= second and len(second) == 19
        assert store.done_since((datetime.now(UTC) + timedelta(seconds=1)).isoformat()) == []


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "unknown"),
        (0, "done"),
        (0.2, "< 1 s"),
        (40, "40 s"),
        (125, "2 min 5 s"),
        (7530, "2 h 5 min"),
        (90061, "1 d 1 h"),
    ],
)
def test_durations_read_as_the_two_largest_units(seconds, text):
    assert duration_text(seconds) == text


def test_attempts_grouped_by_second_count_as_many_jobs():
    counts = {"a": {"u": {"done": 30, "planned": 30}}}
    grouped = [
        DoneAttempt("a", NOW - timedelta(minutes=30), NOW - timedelta(minutes=m), 10) for m in (5, 15, 25)
    ]
    (a,) = pace(counts, grouped, NOW, window_s=1800, buckets=3).stages
    assert a.done_in_window == 30 and a.series == (10, 10, 10)
    assert a.per_hour == pytest.approx(60) and a.eta_seconds == pytest.approx(1800)


def test_the_api_serves_a_costly_pace_again_for_a_while_and_a_cheap_one_fresh():
    import time

    from gridpipe.web.app import PaceCache

    cache, reads = PaceCache(), []

    def read(cost: float):
        def run():
            time.sleep(cost)
            reads.append(cost)
            return pace({}, [], NOW, 60, 1)

        return run

    first = cache.get(("a", 60, 1), read(0.1))  # costly: kept for about a second
    assert cache.get(("a", 60, 1), read(0.1)) is first and len(reads) == 1
    assert cache.get(("a", 3600, 1), read(0.0)) is not first  # another window is read on its own
    time.sleep(1.1)
    cache.get(("a", 60, 1), read(0.0))
    assert len(reads) == 3
    time.sleep(0.3)
    cache.get(("a", 60, 1), read(0.0))  # cheap: read again after a moment
    assert len(reads) == 4
