"""Section 5's random search with range shrinking, outside the default DVC DAG.

- :mod:`pipeline.search.core`: the pure part: the search space per dropout regime (Section 5's
  U[a, b]), seeded sampling, best-quarter selection (diverged = PPL ∞), the shrink rule, the
  search settings of params.yaml and the results file.
- :mod:`pipeline.search.backends`: how one round of samples is executed, through the cluster
  layer (pipeline/cluster). ``local`` queues each sample as a DVC experiment and runs the queue
  (``dvc queue start -j N``); ``slurm`` and ``debug`` run each round as one array of experiment
  tasks, all behind the same :class:`~pipeline.search.backends.Backend`.
- :mod:`pipeline.search.driver`: the loop: sample, execute, record, shrink, next round.

Entry point: ``python -m stages.search``.
"""
