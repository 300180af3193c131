"""Command line of the demo payload: `python -m gridpipe.payloads.demo ACTION [options]`.

Plain argparse so that jobs start fast; the action modules (numpy, PyTables) are imported only
for the action that runs. Exit codes: 0 done, 1 failed (also for missing or unreadable input
files, which a rerun after staging may cure), 2 bad arguments or config, 130 interrupted.
Every error is one line on stderr.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from gridpipe.core.exceptions import EXIT_FAILED, EXIT_OK, EXIT_USAGE, GridpipeError

PROG = "python -m gridpipe.payloads.demo"
PARTICLES = ("gamma", "proton", "electron")


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (no usage block) and exit with code 2."""

    def error(self, message: str) -> NoReturn:
        """Print `prog: error: message` on one line and exit 2."""
        sys.stderr.write(f"{self.prog}: error: {' '.join(message.split())}\n")
        sys.exit(EXIT_USAGE)


def _simulate(a: argparse.Namespace) -> str:
    from gridpipe.payloads.demo.simulate import simulate_file

    result = simulate_file(a.particle, a.run, a.events, a.seed, a.output)
    images = ", ".join(f"{cam} {n}" for cam, n in result.n_images.items())
    return f"wrote {result.path}: {result.n_events} {a.particle} events, images {images}"


def _training(a: argparse.Namespace) -> str:
    from gridpipe.payloads.demo.training import make_training_file

    regressor_dir = a.regressor_dir if a.estimate_energy else None
    rows = make_training_file(
        a.config_file,
        a.outfile,
        a.infile_list,
        regressor_dir=regressor_dir,
        regressor_method=a.regressor_method,
    )
    return f"wrote {a.outfile}: " + ", ".join(f"{cam} {n} images" for cam, n in rows.items())


def _train_model(a: argparse.Namespace) -> str:
    from gridpipe.payloads.demo.models import train_model

    summary = train_model(a.config_file, a.infile, a.outdir, a.bkg_infile)
    return f"wrote {summary['model_type']}s for {', '.join(summary['cameras'])} to {a.outdir}"


def _dl2(a: argparse.Namespace) -> str:
    from gridpipe.payloads.demo.dl2 import make_dl2_file

    n = make_dl2_file(
        a.config_file,
        a.outfile,
        a.infile_list,
        a.regressor_dir,
        a.classifier_dir,
        regressor_method=a.regressor_method,
        classifier_method=a.classifier_method,
    )
    return f"wrote {a.outfile}: {n} events"


def _performance(a: argparse.Namespace) -> str:
    from gridpipe.payloads.demo.performance import make_performance

    written = make_performance(a.config_file, a.indir, a.outdir)
    return "wrote " + ", ".join(str(p) for p in written.values())


def _parser() -> _Parser:
    parser = _Parser(prog=PROG, description="The built-in demo payload of gridpipe (toy CTA-like analysis).")
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = sub.add_parser("simulate", help="write one synthetic simulation file")
    p.add_argument("--particle", required=True, choices=PARTICLES)
    p.add_argument("--run", required=True, type=int, help="run number (obs_id)")
    p.add_argument("--events", required=True, type=int, help="number of simulated showers")
    p.add_argument("--seed", required=True, type=int)
    p.add_argument("--output", required=True, type=Path)
    p.set_defaults(func=_simulate)
    p = sub.add_parser("training", help="selected images per camera type (training data)")
    p.add_argument("--config-file", required=True, type=Path, help="analysis.yaml")
    p.add_argument("--outfile", required=True, type=Path)
    p.add_argument("--estimate-energy", action="store_true", help="add reco_energy from --regressor-dir")
    p.add_argument("--regressor-dir", type=Path)
    p.add_argument("--regressor-method", help="e.g. RandomForestRegressor, when the folder holds several")
    p.add_argument("--infile-list", required=True, nargs="+", type=Path)
    p.set_defaults(func=_training)
    p = sub.add_parser("train-model", help="fit the energy regressor or the gamma/hadron classifier")
    p.add_argument(
        "--config-file", required=True, type=Path, help="model config (e.g. RandomForestRegressor.yaml)"
    )
    p.add_argument("--infile", required=True, type=Path, help="signal (gamma) training file")
    p.add_argument("--bkg-infile", type=Path, help="background (proton) training file, classifiers only")
    p.add_argument("--outdir", required=True, type=Path)
    p.set_defaults(func=_train_model)
    p = sub.add_parser("dl2", help="reconstructed energy and gammaness per event")
    p.add_argument("--config-file", required=True, type=Path, help="analysis.yaml")
    p.add_argument("--regressor-dir", required=True, type=Path)
    p.add_argument("--classifier-dir", required=True, type=Path)
    p.add_argument("--regressor-method", help="when the folder holds several regressors")
    p.add_argument("--classifier-method", help="when the folder holds several classifiers")
    p.add_argument("--outfile", required=True, type=Path)
    p.add_argument("--infile-list", required=True, nargs="+", type=Path)
    p.set_defaults(func=_dl2)
    p = sub.add_parser("performance", help="gammaness cut, DL3-like events, performance curves and plot")
    p.add_argument("--config-file", required=True, type=Path, help="performance.yaml")
    p.add_argument("--indir", required=True, type=Path, help="folder of the merged DL2 files")
    p.add_argument("--outdir", required=True, type=Path)
    p.set_defaults(func=_performance)
    return parser


def _check(parser: _Parser, a: argparse.Namespace) -> None:
    if a.action == "training" and a.estimate_energy and a.regressor_dir is None:
        parser.error("training: --estimate-energy needs --regressor-dir")
    if a.action == "training" and not a.estimate_energy and a.regressor_dir is not None:
        parser.error("training: --regressor-dir is used only with --estimate-energy")


def main(argv: Sequence[str] | None = None) -> int:
    """Run one action; return the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    _check(parser, args)
    func: Callable[[argparse.Namespace], str] = args.func
    name = f"{PROG} {args.action}"
    try:
        print(func(args))
    except GridpipeError as exc:
        sys.stderr.write(f"{name}: error: {' '.join(exc.detail.split())}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write(f"{name}: error: interrupted\n")
        return 130
    except Exception as exc:
        sys.stderr.write(
            f"{name}: error: internal error: {type(exc).__name__}: {' '.join(str(exc).split())}\n"
        )
        return EXIT_FAILED
    return EXIT_OK
