"""`gridpipe demo` killed while it makes its synthetic inputs: the next `gridpipe demo` completes them."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from engine_helpers import gridpipe

from gridpipe.service.context import Analysis
from gridpipe.service.demo import _LISTS, INPUTS_DONE, DemoInputs, demo_lfn, prepare_demo


def test_a_demo_killed_while_making_its_inputs_is_completed_next_time(tmp_path):
    demo = subprocess.Popen(
        [sys.executable, "-m", "gridpipe", "demo", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    storage = tmp_path / "gridpipe_demo" / ".gridpipe" / "storage"
    deadline = time.monotonic() + 120
    while len(list(storage.rglob("*.simtel.h5"))) < 3:  # some inputs stored, most not yet
        assert demo.poll() is None and time.monotonic() < deadline
        time.sleep(0.005)
    demo.send_signal(signal.SIGKILL)
    demo.wait()
    path = tmp_path / "gridpipe_demo"
    assert not (path / INPUTS_DONE).exists()

    assert prepare_demo(tmp_path) == (path, False)  # what `gridpipe demo` does first when run again
    sizes = DemoInputs()
    an = Analysis.open(path)
    try:
        for key, (particle, first, kind) in _LISTS.items():
            count = sizes.training_files if kind == "training" else sizes.perf_files
            expected = [demo_lfn(particle, run) for run in range(first, first + count)]
            lines = (path / an.grid.inputs[key]).read_text(encoding="utf-8").splitlines()
            assert [line for line in lines if not line.startswith("#")] == expected, key
            assert an.storage.exists(expected) == set(expected)
    finally:
        an.close()
    assert (path / INPUTS_DONE).is_file()


def test_a_demo_folder_holding_another_kind_of_demo_is_refused_in_one_line(tmp_path):
    first = gridpipe("demo", "--backend", "local", str(tmp_path), timeout=300)
    assert first.returncode == 0, first.stdout + first.stderr
    path = tmp_path / "gridpipe_demo"
    before = sorted(p.relative_to(path) for p in path.rglob("*") if ".gridpipe" not in p.parts)
    again = gridpipe("demo", "--backend", "slurm", str(tmp_path))
    assert again.returncode == 2, again.stdout + again.stderr
    assert "runs on the 'local' backend; give another folder for a demo on 'slurm'" in again.stderr
    assert sorted(p.relative_to(path) for p in path.rglob("*") if ".gridpipe" not in p.parts) == before
