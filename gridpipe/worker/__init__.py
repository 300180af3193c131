"""The job worker: what one job does where it runs, for every backend that shares a file system.

It stages the job's inputs from storage into a work folder, runs its command lines without a shell
(stdout and stderr into two log files), registers its outputs with size and Adler-32, and cleans up.
The local backend's runners call `run.run_job` in their own processes; `python -m gridpipe.worker
JOB_FILE` (module `main`) runs one job from a job file and writes its exit record (module `records`),
which is what a batch backend reads when its batch system has forgotten the job.

Imports only gridpipe.core, gridpipe.storage (contract and registry) and gridpipe.analysis (to read
configs/grid.yaml) - never the backends or the service.
"""
