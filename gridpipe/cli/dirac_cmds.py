"""`credentials`: the DIRAC token gridpipe would use (never the token itself)."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from gridpipe.cli.options import AnalysisPath, JsonOutput
from gridpipe.cli.root import app
from gridpipe.core.exceptions import EXIT_FAILED


def _analysis_or_none(path: Path | None) -> Path | None:
    """The analysis at --analysis-path (must exist), or around the current directory, or None."""
    from gridpipe.analysis.locate import find_analysis
    from gridpipe.core.exceptions import AnalysisNotFoundError

    if path is not None:
        return find_analysis(path)
    try:
        return find_analysis(None)
    except AnalysisNotFoundError:
        return None


@app.command("credentials")
def credentials_cmd(analysis_path: Path = AnalysisPath, json_output: bool = JsonOutput) -> None:
    """Show the DIRAC token's user, group, VO and time left, and how to renew it (exit 1 if unusable)."""
    from gridpipe.backends.dirac_credentials import read_token_info, token_report
    from gridpipe.backends.dirac_settings import credentials_settings
    from gridpipe.cli.output import console, error, print_json

    connection, minimum = credentials_settings(_analysis_or_none(analysis_path))
    report = token_report(read_token_info(connection.token_path), minimum)
    report["server"] = connection.url or os.environ.get("DIRACX_URL") or "(not set: DIRACX_URL)"
    if json_output:
        print_json(report)
    else:
        out = console()
        for key in ("server", "credentials", "user", "group", "vo", "expires", "time_left", "state"):
            out.print(f"{key.replace('_', ' '):<12} {report[key]}")
        out.print(f"{'properties':<12} {', '.join(report['properties']) or '-'}")
    if report["state"] != "valid":
        error(f"the DIRAC token is {report['state']}: renew it with `dirac login`")
        raise typer.Exit(EXIT_FAILED)
