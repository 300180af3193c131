"""The engine: planning, exactly-once submission, refresh, gathering and the orchestrator loop.
Imports every layer below it (backends, storage, workflow, analysis, store, merge, core); never cli or api."""
