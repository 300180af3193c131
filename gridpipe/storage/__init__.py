"""Storages: where files live (local directory SE, DIRAC data management)."""
