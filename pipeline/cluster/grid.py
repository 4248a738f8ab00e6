"""The table grid on a cluster: one repro task per run, then one fan-in in this workspace.

    preflight      the workspace is committed and the commit is on the git remote; the DVC
                   remote (the workspace's default one) is what the tasks push to
    pending        runs whose status record at this commit is not ``ok`` (rerunning the same
                   command therefore resubmits only what failed or never finished)
    execute        one array (slurm.py); each task: clone, ``dvc repro --pull train@<run>``,
                   ``dvc push --run-cache train@<run>``
    fan in         ``dvc repro --pull train@<run>...`` here: DVC pulls the run-cache, restores
                   each train stage from it ("is cached - skipping run") instead of running it
                   (and rebuilds stale upstream stages, as the tasks did) and writes one
                   dvc.lock; then ``dvc repro --downstream train@<run>...`` re-runs what depends
                   on the results (the report)

The ``local`` backend replaces the array by DVC's own experiment queue on this machine
(``dvc exp run --queue`` + ``dvc queue start -j N``): its workers share this workspace's cache,
so the run-cache entries land here and the same fan-in (without ``--pull``) restores them.
"""

from __future__ import annotations

import fnmatch
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from pipeline.cluster import slurm
from pipeline.cluster.config import BACKENDS, ScaleoutSettings
from pipeline.cluster.dvc import Dvc
from pipeline.cluster.queue import DvcQueue
from pipeline.cluster.tasks import TaskSpec, read_status, stage_outcomes
from pipeline.cluster.workspace import default_dvc_remote, git, git_preflight, shared_checkpoint_dir
from pipeline.config import run_config, run_names
from pipeline.errors import ScaleoutError

TRAIN_STAGE = "train@{run}"


def select_runs(params: dict, patterns: str | list[str]) -> list[str]:
    """Runs of params.yaml matching any of the comma-separated glob patterns, in params order."""
    if isinstance(patterns, str):
        patterns = [p.strip() for p in patterns.split(",") if p.strip()]
    names = run_names(params)
    chosen = []
    for pattern in patterns:
        matched = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        if not matched:
            raise ScaleoutError(f"--runs {pattern!r} matches no run of params.yaml (runs: {', '.join(names)})")
        chosen += [n for n in matched if n not in chosen]
    return [n for n in names if n in chosen]


def grid_dir(repo: Path, settings: ScaleoutSettings, commit: str) -> Path:
    return (repo / settings.log_dir / commit[:12]).resolve()


def repro_specs(
    repo: Path, params: dict, runs: list[str], settings: ScaleoutSettings, commit: str, git_url: str, dvc_remote: str
) -> list[TaskSpec]:
    directory = grid_dir(repo, settings, commit)
    specs = []
    for run in runs:
        cfg = run_config(params, run)
        specs.append(
            TaskSpec(
                kind="repro",
                name=run,
                git_url=git_url,
                commit=commit,
                dvc_remote=dvc_remote,
                targets=(TRAIN_STAGE.format(run=run),),
                log_path=str(directory / f"{run}.log"),
                status_path=str(directory / f"{run}.json"),
                metrics_files=(f"results/{cfg.profile}/{run}/metrics.json",),
                workdir=settings.workdir,
                checkpoint_dir=shared_checkpoint_dir(repo, settings),
                keep_failed_clone=settings.keep_failed_clones,
            )
        )
    return specs


def finished(status_path: Path) -> bool:
    record = read_status(status_path)
    return bool(record and record.get("status") == "ok")


def fan_in(repo: Path, runs: list[str], pull: bool, log_path: Path) -> dict[str, Any]:
    """Restore every run here from the run-cache, write dvc.lock, and re-run what depends on the
    runs (the report), in two DVC calls.

    ``dvc repro [--pull] train@<run>...`` first brings the runs *and what they depend on* up to
    date: an upstream stage that the commit left stale (a code or params change committed without
    re-running ``code`` or ``run-specs``, the code fingerprints and the resolved settings the runs
    depend on) is rebuilt here as each task rebuilt it in its clone, so the runs' dependency
    hashes match the run-cache entries the tasks pushed. ``dvc repro --downstream train@<run>...``
    then rebuilds the stages after them."""
    targets = [TRAIN_STAGE.format(run=r) for r in runs]
    calls = [["repro", *(["--pull"] if pull else []), *targets], ["repro", "--downstream", *targets]]
    dvc = Dvc(repo, timeout_s=None)  # a run the run-cache does not answer for trains here
    log_path.parent.mkdir(parents=True, exist_ok=True)
    outcomes: dict[str, list[str]] = {"ran": [], "restored": [], "unchanged": []}
    output, returncode = "", 0
    for args in calls:
        proc = dvc.run(*args, check=False, merge_output=True)
        argv = ["dvc", *args]
        with log_path.open("a") as log:
            log.write(f"\n$ {' '.join(argv)}\n{proc.stdout}")
        output += proc.stdout
        returncode = proc.returncode
        for key, stages in stage_outcomes(proc.stdout).items():
            outcomes[key] += [s for s in stages if s not in outcomes[key]]
        if returncode != 0:
            break  # "argv" names the call that failed
    # the second call finds what the first restored unchanged: count each stage once
    outcomes["unchanged"] = [s for s in outcomes["unchanged"] if s not in outcomes["ran"] + outcomes["restored"]]
    return {
        "argv": argv,
        "returncode": returncode,
        "log": str(log_path),
        "output": output,
        "trained_here": [t for t in targets if t in outcomes["ran"]],
        **outcomes,
    }


# ---------------------------------------------------------------------------- the local backend


def run_local_queue(
    repo: Path,
    runs: list[str],
    settings: ScaleoutSettings,
    directory: Path,
    poll_s: float = 5.0,
    echo: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Each run as a queued experiment of its train stage, run by ``dvc queue start -j N`` workers
    on this machine (they share this workspace's cache, hence its run-cache); one record per run."""
    stamp = time.strftime("%Y%m%d%H%M%S")
    names = {run: f"grid-{run}-{stamp}" for run in runs}
    queue = DvcQueue(Dvc(repo), settings.local_jobs, log=echo, label="local", poll_s=poll_s)
    try:
        for run, name in names.items():
            queue.add(name, TRAIN_STAGE.format(run=run))
        queue.start()
        states = queue.wait(list(names.values()))
    finally:  # dvc 3.67 often leaves a worker alive after the queue empties: end the ones started here
        queue.stop()
    records = []
    for run, name in names.items():
        log_path = directory / f"{run}.log"
        logs = queue.logs(name)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text(logs)
        ok = states.get(name) == "Success"
        record = {
            "name": run,
            "kind": "repro",
            "backend": "local",
            "experiment": name,
            "log": str(log_path),
            "status": "ok" if ok else "failed",
            "stages": stage_outcomes(logs),
        }
        if not ok:
            record.update(failed_step="dvc queue", error=f"queued experiment {name}: {states.get(name, 'unknown')}")
        records.append(record)
    return records


# ---------------------------------------------------------------------------- the driver


@dataclass
class GridResult:
    commit: str | None
    submitted: list[str]
    skipped: list[str]  # already ok at this commit
    records: list[dict[str, Any]]
    fan_in: dict[str, Any] | None = None
    failed: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed and (self.fan_in is None or self.fan_in["returncode"] == 0)


def run_grid(
    repo: Path,
    params: dict,
    runs: list[str],
    backend: str,
    settings: ScaleoutSettings,
    *,
    force: bool = False,
    do_fan_in: bool = True,
    echo: Callable[[str], None] = print,
    job_name: str = "scrn-grid",
) -> GridResult:
    """Run ``runs`` through ``backend`` and fan the successful ones in; see the module docstring."""
    if backend not in BACKENDS:
        raise ScaleoutError(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    repo = repo.resolve()
    if backend == "local":
        commit = git(repo, "rev-parse", "HEAD", check=False) or None
        directory = (repo / settings.log_dir / f"local-{time.strftime('%Y%m%d%H%M%S')}").resolve()
        echo(f"local: {len(runs)} run(s) through DVC's queue here, {settings.local_jobs} worker(s)")
        records = run_local_queue(repo, runs, settings, directory, echo=echo)
        submitted, skipped, pull = list(runs), [], False
        try:
            default_dvc_remote(repo)
            pull = True
        except ScaleoutError:
            pass
    else:
        commit, git_url = git_preflight(repo, settings.git_remote)
        dvc_remote = default_dvc_remote(repo)
        directory = grid_dir(repo, settings, commit)
        specs = repro_specs(repo, params, runs, settings, commit, git_url, dvc_remote)
        todo = [s for s in specs if force or not finished(Path(s.status_path))]
        skipped = [s.name for s in specs if s not in todo]
        submitted = [s.name for s in todo]
        if skipped:
            echo(
                f"already done at {commit[:12]} (status ok; pass --force to resubmit, the run-cache answers): "
                f"{', '.join(skipped)}"
            )
        echo(f"{backend}: submitting {len(todo)} task(s) as one array at {commit[:12]}; logs in {directory}")

        def report(record: dict) -> None:
            echo(f"  {record['name']}: {record['status']} ({record.get('seconds', '?')} s) log: {record['log']}")

        records = slurm.execute(
            todo, backend, settings, directory.parent / "submitit" / "%j", job_name, on_record=report
        )
        pull = True
    result = GridResult(commit=commit, submitted=submitted, skipped=skipped, records=records)
    result.failed = [r for r in records if r["status"] != "ok"]
    for r in result.failed:
        echo(
            f"FAILED {r['name']} at step {r.get('failed_step')}: {r.get('error')}\n"
            f"  log: {r['log']}"
            + (f"\n  job log: {r['job_log']}" if r.get("job_log") else "")
            + (f"\n  clone kept at: {r['clone']}" if r.get("clone") else "")
        )
    if result.failed:
        names = ",".join(r["name"] for r in result.failed)
        echo(
            f"{len(result.failed)} of {len(records)} task(s) failed; the others' results are pushed and fanned in. "
            f"Resubmit only the failed ones by running the same command again, or: "
            f"python -m stages.grid --backend {backend} --runs '{names}'"
        )
    done = [s for s in runs if s in skipped or any(r["name"] == s and r["status"] == "ok" for r in records)]
    if do_fan_in and done:
        result.fan_in = fan_in(repo, done, pull, directory / "fan-in.log")
        fi = result.fan_in
        if fi["returncode"] != 0:
            echo(f"fan-in failed (`{' '.join(fi['argv'])}`, exit {fi['returncode']}); log: {fi['log']}")
        else:
            echo(
                f"fan-in: {len(fi['restored'])} stage(s) restored from the run-cache, {len(fi['unchanged'])} "
                f"unchanged, ran here: {', '.join(fi['ran']) or 'none'}; dvc.lock updated"
            )
        if fi["trained_here"]:
            echo(f"warning: the run-cache did not answer for {', '.join(fi['trained_here'])}: they trained here")
    return result
