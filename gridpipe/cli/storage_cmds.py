"""`storage add|ls|rm`: files in the analysis's storage (users bring their own input files)."""

from __future__ import annotations

from pathlib import Path

import typer

from gridpipe.cli.options import AnalysisPath, JsonOutput, open_analysis
from gridpipe.cli.root import app

storage_app = typer.Typer(
    help="Files in the analysis's storage: add your own, list, remove.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(storage_app, name="storage")


@storage_app.command("add")
def add_cmd(
    paths: list[Path] = typer.Argument(..., help="Files or folders (a folder's files keep their paths)."),
    to: str = typer.Option(
        ..., "--to", help="LFN folder they go under, e.g. /vo.cta.in2p3.fr/user/j/jdoe/sims."
    ),
    link: bool = typer.Option(
        False, "--link", help="Hard-link into the storage instead of copying (same file system)."
    ),
    in_place: bool = typer.Option(
        False,
        "--in-place",
        help="Register where they are: no copy; the storage reads them there, never removes them.",
    ),
    analysis_path: Path = AnalysisPath,
) -> None:
    """Add files to the storage under an LFN folder, with their size and Adler-32."""
    from gridpipe.cli.output import console
    from gridpipe.core.exceptions import UsageError
    from gridpipe.service.storage_files import add_files, plan_additions

    if link and in_place:
        raise UsageError("--link and --in-place exclude each other: choose one")
    mode = "in-place" if in_place else "link" if link else "copy"
    plan = plan_additions(paths, to)
    out = console()
    with open_analysis(analysis_path) as an:
        added = add_files(
            an.storage, plan, mode, lambda info: out.print(f"{info.lfn}\t{info.size}\t{info.adler32}")
        )
    out.print(f"{len(added)} file(s) added ({mode})")


@storage_app.command("ls")
def ls_cmd(
    lfn_dir: str = typer.Argument(..., help="LFN folder (everything below it is listed)."),
    analysis_path: Path = AnalysisPath,
    json_output: bool = JsonOutput,
) -> None:
    """List the files below an LFN folder: LFN, size, Adler-32."""
    from gridpipe.cli.output import console, print_json

    with open_analysis(analysis_path) as an:
        files = an.storage.list(lfn_dir)
    if json_output:
        print_json([{"lfn": f.lfn, "size": f.size, "adler32": f.adler32} for f in files])
        return
    out = console()
    for f in files:
        out.print(f"{f.lfn}\t{f.size}\t{f.adler32}")


@storage_app.command("rm")
def rm_cmd(
    lfns: list[str] = typer.Argument(..., help="LFNs to remove."),
    recursive: bool = typer.Option(False, "--recursive", "-r", help="LFN folders: remove every file below."),
    analysis_path: Path = AnalysisPath,
) -> None:
    """Remove files from the storage (files registered in place are only forgotten, never deleted)."""
    from gridpipe.cli.output import console
    from gridpipe.service.storage_files import remove_files

    with open_analysis(analysis_path) as an:
        gone = remove_files(an.storage, lfns, recursive=recursive)
    console().print(f"{len(gone)} file(s) removed")
