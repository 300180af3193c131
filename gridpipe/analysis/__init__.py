"""Analysis: config models (grid.yaml, workflow.yaml stages, ...), the tree generator, the naming of jobs and
LFNs. Imports only `gridpipe.core`."""
