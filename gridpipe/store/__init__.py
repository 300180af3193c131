"""The SQLite job archive of an analysis: jobs, attempts, files and an append-only event log."""

from gridpipe.store.jobstore import JobRecord, JobStore

__all__ = ["JobRecord", "JobStore"]
