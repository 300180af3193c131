"""The engine: planning, exactly-once submission, refresh, gathering and the orchestrator loop."""
