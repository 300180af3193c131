"""Analysis: config models, the tree generator, and the naming of jobs and LFNs."""
