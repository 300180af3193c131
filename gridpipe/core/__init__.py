"""Core: exceptions, states, small file-system and time helpers. Imports nothing else of gridpipe."""
