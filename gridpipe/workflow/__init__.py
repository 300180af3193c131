"""Workflow logic: stages, splitters, planning, chaining and retry policy (no I/O beyond reading lists)."""
