"""The schedd through HTCondor's Python bindings (version 2: `htcondor2`), with bounded retries.

A call that fails (the schedd restarting, the collector not answering, a connection refused) is tried again
a bounded number of times with a doubling backoff, then raises `ScheddUnreachableError` (a BackendError,
which `gridpipe run` treats as an outage it waits out). The schedd is located afresh after a failure: a
restarted schedd listens at a new address. Submission is not retried here: the caller reconciles first.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import classad2
import htcondor2

from gridpipe.core.exceptions import BackendError

T = TypeVar("T")


class ScheddUnreachableError(BackendError):
    """The schedd (or the collector that locates it) did not answer within the retries."""

    def __init__(self, what: str, problem: str) -> None:
        self.what, self.problem = what, problem
        super().__init__(f"the HTCondor schedd cannot be reached ({what}): {problem}")


def problem_of(exc: BaseException) -> str:
    """The last line of what the bindings said (their messages can span lines)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


@dataclass
class ScheddClient:
    """One schedd: located once, again after a failure; every call counted (the benchmarks read `calls`)."""

    name: str = ""
    collector: str = ""
    retries: int = 3
    backoff: float = 1.0
    backoff_max: float = 30.0
    calls: int = 0
    _schedd: Any = None

    def schedd(self) -> Any:
        """The schedd's handle (located through the collector when it is named)."""
        if self._schedd is None:
            if self.name:
                collector = htcondor2.Collector(self.collector or None)
                ad = collector.locate(htcondor2.DaemonType.Schedd, self.name)
                self._schedd = htcondor2.Schedd(ad)
            else:
                self._schedd = htcondor2.Schedd()
        return self._schedd

    def once(self, what: str, call: Callable[[Any], T]) -> T:
        """One call on the schedd; ScheddUnreachableError when it fails (the handle is dropped)."""
        self.calls += 1
        try:
            return call(self.schedd())
        except (htcondor2.HTCondorException, classad2.ClassAdException, RuntimeError, OSError) as exc:
            self._schedd = None
            raise ScheddUnreachableError(what, problem_of(exc)) from None

    def retried(self, what: str, call: Callable[[Any], T]) -> T:
        """A call that changes nothing (query, history, act on ended jobs), retried with backoff."""
        delay = self.backoff
        for attempt in range(self.retries + 1):
            try:
                return self.once(what, call)
            except ScheddUnreachableError:
                if attempt == self.retries:
                    raise
            time.sleep(delay)
            delay = min(max(delay * 2, 0.1), self.backoff_max)
        raise AssertionError("unreachable")  # pragma: no cover

    # ---- the verbs -------------------------------------------------------------------------------
    def query(self, constraint: str, projection: Sequence[str]) -> list[Any]:
        return self.retried("query", lambda s: list(s.query(constraint, list(projection))))

    def history(
        self, constraint: str, projection: Sequence[str], match: int = -1, since: str | None = None
    ) -> list[Any]:
        def call(s: Any) -> list[Any]:
            kwargs: dict[str, Any] = {"match": match}
            if since is not None:
                kwargs["since"] = since
            return list(s.history(constraint, list(projection), **kwargs))

        return self.retried("history", call)

    def remove(self, ids: Sequence[str], reason: str) -> None:
        self.retried("remove", lambda s: s.act(htcondor2.JobAction.Remove, list(ids), reason))

    def submit(self, description: dict[str, str], items: Sequence[dict[str, str]]) -> tuple[int, int]:
        """One transaction: a cluster with one job per item; (cluster id, first proc id). Not retried."""

        def call(s: Any) -> tuple[int, int]:
            result = s.submit(htcondor2.Submit(description), itemdata=_items(items))
            return int(result.cluster()), int(result.first_proc())

        return self.once("submit", call)


def _items(items: Sequence[dict[str, str]]) -> Iterator[dict[str, str]]:
    return iter([dict(item) for item in items])
