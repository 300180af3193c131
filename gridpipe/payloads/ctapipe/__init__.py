"""The ctapipe payload: ctapipe's own tools run by gridpipe's jobs, their configuration, output checks and
failure reasons (payload.py), small synthetic event files made with ctapipe's data model (synthetic.py,
instrument.py) and a plot of the IRFs (plot.py). Only synthetic.py, instrument.py and plot.py import
ctapipe (the `gridpipe[ctapipe]` extra); the rest runs without it.

Command line: `python -m gridpipe.payloads.ctapipe simulate|plot-irf` (see cli.py).
"""
