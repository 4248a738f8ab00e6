"""Scale-out: run DVC stages and experiments as Slurm job arrays (submitit), one clone per task.

Layers, bottom up:

- ``config``  the ``scaleout:`` section of params.yaml (Slurm resources, git remote, paths);
- ``tasks``   what one array task does in its own clone at a commit: a *repro task*
              (``dvc repro --pull <stage>`` then ``dvc push --run-cache``) or an *experiment task*
              (``dvc exp run -n <name> -S ...`` then ``dvc exp push``); it never raises and
              returns a status record that names its log;
- ``backends`` submits a list of tasks as one array: ``slurm`` (submitit's AutoExecutor and
              ``map_array``) or ``debug`` (submitit's in-process DebugExecutor, one after another);
- ``grid`` / ``experiments`` the drivers: preflight checks (clean, pushed), which tasks are
              still missing, the fan-in (``dvc repro --pull``) and ``dvc exp pull``.

This package is not imported by any DVC stage, so changing it re-runs nothing.
"""
