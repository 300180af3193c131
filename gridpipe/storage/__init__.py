"""Storages: where files live (local directory SE, DIRAC data management).
Imports analysis and core; never workflow (its sibling), backends, service or the edges."""
