"""The cluster layer: DVC stages and experiments run elsewhere than in this process, on a Slurm
job array (one clone per task, through submitit) or on DVC's experiment queue on this machine.

Modules, bottom up:

- ``config``     the ``scaleout:`` section of params.yaml (Slurm resources, git remote, paths);
- ``dvc``        :class:`~pipeline.cluster.dvc.Dvc`, the one way to run a DVC command here: one
                 error type (:class:`~pipeline.errors.ScaleoutError`), one timeout;
- ``queue``      :class:`~pipeline.cluster.queue.DvcQueue`, DVC's experiment queue on this machine
                 and the workers it started (the ``local`` backends of the grid and the search);
- ``tasks``      what one array task does in its own clone at a commit: a *repro task*
                 (``dvc repro --pull <stage>`` then ``dvc push --run-cache``) or an *experiment
                 task* (``dvc exp run -n <name> -S ...`` then ``dvc exp push``); it never raises
                 and returns a status record that names its log (``push_outputs``: a command the
                 repro task runs);
- ``slurm``      submits a list of tasks as one array: ``slurm`` (submitit's AutoExecutor and
                 ``map_array``) or ``debug`` (submitit's in-process DebugExecutor);
- ``workspace``  the preflight checks (committed, pushed, a DVC remote) and what tasks share;
- ``grid``, ``experiments``  the two drivers: a table grid of runs with its fan-in
                 (``python -m stages.grid``), and one round of experiments as one array (the
                 random search's ``slurm`` and ``debug`` backends, pipeline/search/backends.py).

This package is not imported by any DVC stage, so changing it re-runs nothing.
"""
