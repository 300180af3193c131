"""Workflow logic: splitters, planning, command lines, progress decisions and retry policy (pure functions,
no I/O beyond reading lists). Imports analysis and core; never the store, storage, backends or service."""
