"""Backends: where jobs run (local processes, DIRAC, Slurm, HTCondor), behind one batch contract."""
