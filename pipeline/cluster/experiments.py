"""A round of DVC experiments as one array: the random search's Slurm and debug backends.

Each sample becomes an *experiment task* (tasks.py): in its own clone at the current commit,
``dvc exp run --pull -n <name> -S key=value ... <stage>``, then ``dvc exp push origin <name>``
(the experiment's Git ref to the git remote; outputs and run-cache to the shared DVC remote).
The task also returns the metrics file it produced, so the search can shrink its ranges without
a Git round trip; ``dvc exp pull`` then brings the experiments into this workspace
(``dvc exp show`` lists them).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from pipeline.cluster import slurm
from pipeline.cluster.config import ScaleoutSettings
from pipeline.cluster.dvc import Dvc
from pipeline.cluster.tasks import TaskSpec
from pipeline.cluster.workspace import default_dvc_remote, git_preflight, shared_checkpoint_dir
from pipeline.errors import ScaleoutError


def set_value(key: str, value: Any) -> str:
    """A ``-S`` argument; DVC parses the value as YAML, of which JSON is a subset."""
    return f"{key}={value if isinstance(value, str) else json.dumps(value)}"


def set_params(values: Mapping[str, Any] | Sequence[str]) -> tuple[str, ...]:
    """The ``-S`` values of one experiment: a mapping ``{key: value}`` is formatted by
    :func:`set_value`; a sequence is taken as ready-made ``-S`` values, passed on exactly (the
    random search's ``++key=value``, Hydra's force-add for keys a run takes from a preset)."""
    if isinstance(values, Mapping):
        return tuple(set_value(k, v) for k, v in values.items())
    if isinstance(values, str):
        raise TypeError(f"expected a mapping or a sequence of -S values, got the string {values!r}")
    return tuple(values)


def experiment_specs(
    samples: Mapping[str, Mapping[str, Any] | Sequence[str]],
    *,
    stage: str,
    metrics_file: str,
    commit: str,
    git_url: str,
    dvc_remote: str,
    directory: Path,
    settings: ScaleoutSettings,
    checkpoint_dir: str | None,
) -> list[TaskSpec]:
    return [
        TaskSpec(
            kind="exp",
            name=name,
            git_url=git_url,
            commit=commit,
            dvc_remote=dvc_remote,
            targets=(stage,) if stage else (),
            set_params=set_params(values),
            metrics_files=(metrics_file,),
            log_path=str(directory / f"{name}.log"),
            status_path=str(directory / f"{name}.json"),
            workdir=settings.workdir,
            checkpoint_dir=checkpoint_dir,
            keep_failed_clone=settings.keep_failed_clones,
        )
        for name, values in samples.items()
    ]


def run_experiment_round(
    samples: Mapping[str, Mapping[str, Any] | Sequence[str]],
    *,
    stage: str,
    metrics_file: str,
    backend: str,
    settings: ScaleoutSettings,
    repo: Path = Path("."),
    round_name: str = "round",
    pull: bool = True,
    echo: Callable[[str], None] = print,
) -> dict[str, dict[str, Any]]:
    """Run one search round as one array and return ``{name: status record}``.

    ``samples``: experiment name (unique, a valid Git ref component) -> {params key: value},
    e.g. ``{"r1-s03": {"runs.ptb-small-scrn-nd.model.dropout.p_i": 0.31}}``, or -> a sequence of
    ready-made ``-S`` values (``("++runs.ptb-small-scrn-nd.model.dropout.p_i=0.31",)``).
    ``stage``: the stage each experiment reproduces (``train@ptb-small-scrn-nd``), with its
    upstream; ``metrics_file``: the JSON it writes (``results/quick/ptb-small-scrn-nd/metrics.json``).
    ``backend``: ``slurm`` (one sbatch array) or ``debug`` (in-process, one after another).
    A record's ``status`` is ``ok`` or ``failed`` (with ``failed_step``, ``error`` and ``log``);
    ``record["metrics"][metrics_file]`` is the parsed metrics of an ok one. Failed samples are
    reported, never raised. With ``pull``, ``dvc exp pull --force <git remote> <ok names>`` follows
    (``--force``: an experiment of the same name from an earlier attempt is replaced).
    The workspace must be committed and pushed (the tasks clone the commit).
    """
    if backend not in slurm.EXECUTOR_BACKENDS:
        raise ScaleoutError(
            f"experiment rounds run on {' or '.join(slurm.EXECUTOR_BACKENDS)}, not {backend!r} "
            "(locally, use DVC's queue: dvc exp run --queue)"
        )
    repo = Path(repo).resolve()
    commit, git_url = git_preflight(repo, settings.git_remote)
    dvc_remote = default_dvc_remote(repo)
    directory = (repo / settings.log_dir / commit[:12] / "exp" / round_name).resolve()
    specs = experiment_specs(
        samples,
        stage=stage,
        metrics_file=metrics_file,
        commit=commit,
        git_url=git_url,
        dvc_remote=dvc_remote,
        directory=directory,
        settings=settings,
        checkpoint_dir=shared_checkpoint_dir(repo, settings),
    )
    echo(f"{backend}: round {round_name}, {len(specs)} experiment(s) as one array; logs in {directory}")
    records = slurm.execute(specs, backend, settings, directory / "submitit" / "%j", f"scrn-{round_name}")
    by_name = {r["name"]: r for r in records}
    for r in records:
        if r["status"] != "ok":
            echo(f"FAILED {r['name']} at step {r.get('failed_step')}: {r.get('error')}\n  log: {r['log']}")
    ok = [r["name"] for r in records if r["status"] == "ok"]
    if pull and ok:
        proc = Dvc(repo, timeout_s=None).run("exp", "pull", "--force", settings.git_remote, *ok, check=False)
        if proc.returncode != 0:
            echo(
                f"warning: `dvc exp pull {settings.git_remote} ...` failed: "
                f"{(proc.stdout + proc.stderr).strip()[-1000:]}"
            )
    return by_name


def metric(
    records: Mapping[str, Mapping[str, Any]], metrics_file: str, key: str = "best_valid_ppl"
) -> dict[str, float | None]:
    """``{name: metrics[key]}`` of a round; None for a failed sample or a missing value."""
    out = {}
    for name, r in records.items():
        m = (r.get("metrics") or {}).get(metrics_file) if r.get("status") == "ok" else None
        out[name] = m.get(key) if isinstance(m, dict) else None
    return out
