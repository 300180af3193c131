"""Core: models, states, exceptions, small file-system, SQLite and time helpers. The bottom layer: imports
nothing else of gridpipe."""
