"""Typer commands: thin wrappers that parse options, call the service and print; the top layer with `api`.
Inside: `app` -> the `*_cmds` modules -> `root` (the typer app), `options`, `output`, `render`, `messages`."""
