"""`python -m gridpipe.payloads.ctapipe ACTION`: the two steps of a ctapipe analysis that ctapipe has no
tool for. `simulate` writes a small synthetic event file (synthetic.py); `plot-irf` draws the IRF file
(plot.py). Exit codes: 0 done, 1 failed, 2 bad arguments; errors are one line on stderr."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NoReturn

from gridpipe.core.exceptions import EXIT_FAILED, EXIT_OK, EXIT_USAGE

PROG = "python -m gridpipe.payloads.ctapipe"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One line, exit code 2."""
        sys.stderr.write(f"{self.prog}: error: {' '.join(message.split())}\n")
        sys.exit(EXIT_USAGE)


def _parser() -> argparse.ArgumentParser:
    from gridpipe.payloads.ctapipe.synthetic import POPULATIONS

    parser = _Parser(prog=PROG, description=__doc__)
    actions = parser.add_subparsers(dest="action", required=True, parser_class=_Parser)
    sim = actions.add_parser("simulate", help="write a small synthetic event file (ctapipe's data model)")
    sim.add_argument("--particle", required=True, choices=sorted(POPULATIONS))
    sim.add_argument("--obs-id", type=int, required=True, help="observation (run) id, also the seed")
    sim.add_argument("--showers", type=int, default=2000, help="showers thrown (default 2000)")
    sim.add_argument("--output", type=Path, required=True)
    plot = actions.add_parser("plot-irf", help="plot ctapipe-compute-irf's IRF (and benchmark) file")
    plot.add_argument("--irf", type=Path, required=True)
    plot.add_argument("--benchmarks", type=Path, default=None)
    plot.add_argument("--output", type=Path, required=True)
    return parser


def main(argv: list[str]) -> int:
    """Run one action; the exit code."""
    args = _parser().parse_args(argv)
    try:
        if args.action == "simulate":
            from gridpipe.payloads.ctapipe.synthetic import write_synthetic_file

            made = write_synthetic_file(args.particle, args.obs_id, args.showers, args.output)
            print(f"wrote {made.path}: {made.events} of {made.thrown} {args.particle} showers triggered")
        else:
            from gridpipe.payloads.ctapipe.plot import plot_irf

            drawn = plot_irf(args.irf, args.benchmarks, args.output)
            print(f"wrote {args.output}: {', '.join(drawn) or 'nothing to draw'}")
    except (OSError, KeyError, ValueError) as exc:
        print(f"{PROG} {args.action}: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK
