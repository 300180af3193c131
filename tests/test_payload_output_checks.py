"""The job worker checks a grid job's outputs with its payload before registering them: a protopipe output
whose root `status` is not "complete" fails the job (protopipe's exit codes cannot be trusted) and is not
registered; a complete one is. Real worker subprocess, real HDF5 files, real local storage."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from engine_helpers import LFN_DIR, make_analysis

from gridpipe.core.models import JobSpec
from gridpipe.core.states import JobStatus
from gridpipe.service.context import Analysis
from gridpipe.worker.records import JobFile, exit_record_path, read_exit_record, write_job_file

OUT = "TRAINING_energy_gamma_tail_run1.h5"
WRITE = (
    "import sys, tables, numpy as np\n"
    "with tables.open_file(sys.argv[1], 'w') as h5:\n"
    "    h5.create_table('/', 'events', obj=np.zeros(4, dtype=[('x', 'f4')]))\n"
    "    if sys.argv[2] != '-': h5.root._v_attrs.status = sys.argv[2]\n"
)


@pytest.fixture(scope="module")
def analysis(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_analysis(tmp_path_factory.mktemp("checks"), {"gamma": 1})


@pytest.mark.parametrize(("status", "done"), [("complete", True), ("failed", False), ("-", False)])
def test_protopipe_outputs_are_registered_only_when_complete(tmp_path, analysis, status, done):
    lfn = f"/vo.test/user/c/checks/{status.strip('-') or 'none'}/{OUT}"
    spec = JobSpec(
        name=f"check_{status.strip('-') or 'none'}",
        stage="work",
        unit="gamma",
        commands=((sys.executable, "-c", WRITE, OUT, status),),
        inputs=(f"{LFN_DIR}/gamma/gamma_run1.txt",),
        outputs=(lfn,),
        payload="protopipe",
    )
    job_file = tmp_path / "job.job.json"
    write_job_file(job_file, JobFile(analysis=str(analysis), spec=spec))
    run = subprocess.run(
        [sys.executable, "-m", "gridpipe.worker", str(job_file)], capture_output=True, text=True, timeout=120
    )
    record = read_exit_record(exit_record_path(job_file))
    assert record is not None
    with Analysis.open(analysis) as an:
        registered = an.storage.exists([lfn])
    if done:
        assert run.returncode == 0 and record.status == JobStatus.DONE, record
        assert registered == {lfn}
    else:
        assert run.returncode == 1 and record.status == JobStatus.FAILED
        assert record.reason is not None and "not 'complete'" in record.reason and OUT in record.reason
        assert not registered
