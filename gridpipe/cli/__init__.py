"""Typer commands: thin wrappers that parse options, call the logic and print."""
