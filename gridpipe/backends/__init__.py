"""Backends: where jobs run (local processes, DIRAC, Slurm, HTCondor), behind one batch contract.
Imports storage, worker, analysis and core; never service or the edges."""
