"""The SQLite job archive of an analysis: jobs, attempts, files and an append-only event log.
Imports only `gridpipe.core`."""

from gridpipe.store.jobstore import JobRecord, JobStore

__all__ = ["JobRecord", "JobStore"]
