"""Scale-out (python -m stages.grid, pipeline/cluster): the Slurm array submitit generates, the
whole clone -> repro -> push -> fan-in loop with the debug backend on real PTB, failure and
resubmission, and the experiment tasks the random search submits.

The loop tests use a local bare git repository as the origin and a local directory as the DVC
remote, as a cluster's shared filesystem would provide them."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.cluster import grid, slurm, tasks
from pipeline.cluster.config import ScaleoutSettings, scaleout_settings
from pipeline.cluster.experiments import metric, run_experiment_round
from pipeline.cluster.grid import run_grid
from pipeline.cluster.slurm import slurm_parameters
from pipeline.cluster.tasks import TaskSpec
from pipeline.cluster.workspace import git_preflight
from pipeline.config import load_params
from pipeline.errors import ParamsError, ScaleoutError
from tests.dvc_queue import end_queue_workers, queue_worker_pids
from tests.scratch import REPO, TINY, commit_all, sh, tool_env

# ---------------------------------------------------------------------------- configuration


def test_scaleout_section_is_validated_and_flags_override_it():
    settings = scaleout_settings(load_params(REPO / "params.yaml"))
    assert settings.git_remote == "origin" and settings.array_parallelism >= 1
    assert scaleout_settings({"scaleout": {"time_min": 30}}, {"time_min": 45, "partition": None}).time_min == 45
    for section, key in (
        ({"time_min": 0}, "scaleout.time_min"),
        ({"gpus_per_task": -1}, "scaleout.gpus_per_task"),
        ({"mem_gb": "lots"}, "scaleout.mem_gb"),
        ({"setup": "module load x"}, "scaleout.setup"),
        ({"partiton": "gpu"}, "scaleout.partiton"),
    ):
        with pytest.raises(ParamsError, match=key.replace(".", r"\.")):
            scaleout_settings({"scaleout": section})


def test_slurm_array_matches_the_config(tmp_path, monkeypatch):
    """submitit's own sbatch script for a three-task array: a fake `sbatch` records it."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "srun").write_text("#!/bin/sh\nexit 0\n")
    (fake / "sbatch").write_text(f'#!/bin/sh\ncp "$1" {tmp_path}/submitted.sh\necho "Submitted batch job 4242"\n')
    for f in fake.iterdir():
        f.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    params = {
        "scaleout": {
            "partition": "gpu-a100",
            "account": "nlp",
            "time_min": 90,
            "gpus_per_task": 1,
            "cpus_per_task": 8,
            "mem_gb": 32,
            "array_parallelism": 2,
            "setup": ["module load cuda/12.4"],
        }
    }
    settings = scaleout_settings(params, {"time_min": 75})  # a flag overrides the section
    specs = [_spec(tmp_path, f"run{i}") for i in range(3)]
    jobs = slurm.submit(specs, "slurm", settings, tmp_path / "submitit" / "%j", "scrn-grid")
    assert [j.job_id for j in jobs] == ["4242_0", "4242_1", "4242_2"]
    script = (tmp_path / "submitted.sh").read_text()
    flags = dict(
        line[len("#SBATCH --") :].split("=", 1)
        for line in script.splitlines()
        if line.startswith("#SBATCH --") and "=" in line
    )
    assert flags["partition"] == "gpu-a100" and flags["account"] == "nlp"
    assert flags["time"] == "75" and flags["gpus-per-task"] == "1" and flags["cpus-per-task"] == "8"
    assert flags["mem"] == "32GB" and flags["array"] == "0-2%2" and flags["job-name"] == "scrn-grid"
    assert flags["nodes"] == "1" and flags["ntasks-per-node"] == "1" and "gpus-per-node" not in flags
    assert "module load cuda/12.4" in script and "submitit.core._submit" in script
    assert flags["output"].endswith("%A_%a_0_log.out")  # one Slurm log per array task
    assert slurm_parameters(settings, "x")["slurm_array_parallelism"] == 2


def _spec(tmp_path: Path, name: str = "run0") -> TaskSpec:
    return TaskSpec(
        kind="repro",
        name=name,
        git_url="/git/origin.git",
        commit="0" * 40,
        dvc_remote="/dvc",
        targets=(f"train@{name}",),
        log_path=str(tmp_path / f"{name}.log"),
        status_path=str(tmp_path / f"{name}.json"),
    )


def test_a_refused_submission_is_a_scaleout_error_naming_the_cause(tmp_path, monkeypatch):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "srun").write_text("#!/bin/sh\nexit 0\n")
    (fake / "sbatch").write_text("#!/bin/sh\necho 'sbatch: error: invalid partition specified: gpu-x' >&2\nexit 1\n")
    for f in fake.iterdir():
        f.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    settings = scaleout_settings({"scaleout": {"partition": "gpu-x"}}, {})
    with pytest.raises(ScaleoutError, match="(?s)submitting 1 task.*slurm failed.*partition"):
        slurm.submit([_spec(tmp_path)], "slurm", settings, tmp_path / "submitit" / "%j", "scrn-grid")


@pytest.mark.parametrize("stored_status", ["failed", "running"])
def test_a_job_that_dies_is_reported_with_its_own_error(tmp_path, stored_status):
    """Cancelled, timed out or pre-empted: the job's error, never an earlier attempt's stored one."""
    spec = _spec(tmp_path)
    Path(spec.status_path).write_text(
        json.dumps(
            {
                "name": spec.name,
                "status": stored_status,
                "host": "node7",
                "failed_step": "repro",
                "error": "CUDA out of memory (an earlier attempt)",
            }
            if stored_status == "failed"
            else {"name": spec.name, "status": stored_status, "host": "node7"}
        )
    )

    class DeadJob:
        paths = type("Paths", (), {"stdout": tmp_path / "4242_0_log.out"})

        def result(self):
            raise RuntimeError("Job 4242_0 (task: 0) has state CANCELLED")

    (record,) = slurm.collect([DeadJob()], [spec])
    assert record["status"] == "failed" and record["failed_step"] == "job"
    assert record["error"] == "RuntimeError: Job 4242_0 (task: 0) has state CANCELLED"
    assert record["job_log"] == str(tmp_path / "4242_0_log.out")
    assert ("host" in record) == (stored_status == "running")  # this attempt's record is kept, an old one is not


# ---------------------------------------------------------------------------- the grid on real PTB


def _lock(main: Path) -> dict:
    return yaml.safe_load((main / "dvc.lock").read_text())["stages"]


def _out_md5(lock: dict, stage: str) -> str:
    return next(o["md5"] for o in lock[stage]["outs"] if o["path"].endswith("/model"))


def _trained_budget(main: Path, lock: dict, run: str) -> dict:
    """The profile budget of the settings ``train@<run>`` was locked with: its run-spec dependency,
    as dvc.lock records it, must be the workspace's spec file."""
    path = f"results/run-specs/{run}.json"
    dep = next(d for d in lock[f"train@{run}"]["deps"] if d["path"] == path)
    assert dep["md5"] == hashlib.md5((main / path).read_bytes()).hexdigest()
    return json.loads((main / path).read_text())["config"]["budget"]


def _records(main: Path, runs) -> dict:
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=main, capture_output=True, text=True).stdout.strip()
    return {r: json.loads((main / "logs" / "scaleout" / commit[:12] / f"{r}.json").read_text()) for r in runs}


@pytest.mark.dvc
def test_grid_debug_backend_runs_in_clones_and_fans_in(cluster):
    main, env = cluster["main"], cluster["env"]
    runs = ["ptb-baseline-40-10", "ptb-baseline-90-10"]
    committed = _lock(main)
    cmd = [
        sys.executable,
        "-m",
        "stages.grid",
        "--backend",
        "debug",
        "--runs",
        ",".join(runs),
        "--workdir",
        str(cluster["clones"]),
    ]
    out = sh(cmd, main, env, timeout=900).stdout

    records = _records(main, runs)
    for run in runs:
        r = records[run]
        assert r["status"] == "ok", r
        assert f"train@{run}" in r["stages"]["ran"]  # trained in its clone ...
        assert "run-specs" in r["stages"]["ran"]  # ... rebuilding what the commit left stale
        assert "prepare@ptb" not in r["stages"]["ran"]  # ... on the corpus pulled from the remote
        assert Path(r["log"]).is_file() and f"{run}: ok" in Path(r["log"]).read_text()
        assert not list(cluster["clones"].glob(f"scrn-{run}-*"))  # a finished task removes its clone
    assert (cluster["remote"] / "runs").is_dir()  # run-cache entries reached the shared remote

    # the fan-in restored both stages from the run-cache; nothing trained in the workspace
    fan_in = (main / "logs" / "scaleout" / records[runs[0]]["commit"][:12] / "fan-in.log").read_text()
    for run in runs:
        assert f"Stage 'train@{run}' is cached - skipping run" in fan_in
        assert f"Running stage 'train@{run}'" not in fan_in
    assert "Running stage 'report'" in fan_in
    assert "Running stage 'run-specs'" in fan_in  # rebuilt here too, so the run-cache keys matched
    lock = _lock(main)
    report = (main / "reports" / "tables.md").read_text()
    for run in runs:
        assert _out_md5(lock, f"train@{run}") != _out_md5(committed, f"train@{run}")
        metrics = json.loads((main / "results" / "quick" / run / "metrics.json").read_text())
        assert metrics == records[run]["metrics"][f"results/quick/{run}/metrics.json"]
        assert metrics["epochs"] == 1 and _trained_budget(main, lock, run) == TINY
        smoke = next(line for line in report.split("## Appendix")[1].splitlines() if line.startswith(f"| {run} "))
        assert f"{metrics['best_valid_ppl']:,.0f} / {metrics['test_ppl']:,.0f}" in smoke  # a smoke run: the appendix
    assert "restored from the run-cache" in out

    # the same command again submits nothing; a forced resubmission is answered by the run-cache
    again = sh(cmd, main, env, timeout=900).stdout
    assert "already done" in again and "submitting 0 task(s)" in again
    sh([*cmd[:6], runs[0], "--workdir", str(cluster["clones"]), "--force", "--no-fan-in"], main, env, timeout=900)
    r = _records(main, runs[:1])[runs[0]]
    assert r["status"] == "ok" and f"train@{runs[0]}" in r["stages"]["restored"]
    assert r["stages"]["ran"] == ["run-specs"]  # stale in the commit, seconds; nothing trained


@pytest.mark.dvc
def test_failed_task_leaves_others_intact_and_resubmits_alone(cluster, monkeypatch):
    main = cluster["main"]
    for key in ("SCRN_DATA_MIRROR", "SCRN_OFFLINE", "PATH", *[k for k in cluster["env"] if k.startswith("GIT_")]):
        monkeypatch.setenv(key, cluster["env"][key])
    runs, broken = ["ptb-baseline-100-40", "ptb-baseline-300-40"], "ptb-baseline-300-40"
    committed = _lock(main)
    real_steps = tasks.task_steps

    def crash_one(spec):  # the node of one task dies in the middle of its DVC command
        steps = real_steps(spec)
        if spec.name == broken:
            steps[0] = ("repro", [sys.executable, "-c", "import sys; sys.exit('simulated node failure')"])
        return steps

    monkeypatch.setattr(tasks, "task_steps", crash_one)
    params = load_params(main / "params.yaml")
    settings = ScaleoutSettings(workdir=str(cluster["clones"]))
    lines: list[str] = []
    first = run_grid(main, params, runs, "debug", settings, echo=lines.append)
    text = "\n".join(lines)
    assert [r["name"] for r in first.failed] == [broken] and not first.ok
    failed = first.failed[0]
    assert f"FAILED {broken}" in text and f"log: {failed['log']}" in text
    assert "simulated node failure" in Path(failed["log"]).read_text() and Path(failed["clone"]).is_dir()
    # the healthy run is pushed and fanned in; the broken one's lock entry and results are untouched
    assert f"Stage 'train@{runs[0]}' is cached - skipping run" in first.fan_in["output"]
    lock = _lock(main)
    assert _out_md5(lock, f"train@{runs[0]}") != _out_md5(committed, f"train@{runs[0]}")
    assert lock[f"train@{broken}"] == committed[f"train@{broken}"]
    assert json.loads((main / "results" / "quick" / broken / "metrics.json").read_text())["epochs"] != 1

    monkeypatch.setattr(tasks, "task_steps", real_steps)  # the node is healthy again
    second = run_grid(main, params, runs, "debug", settings, echo=lines.append)
    assert second.ok and second.submitted == [broken] and second.skipped == [runs[0]]
    assert f"Stage 'train@{broken}' is cached - skipping run" in second.fan_in["output"]
    assert not second.fan_in["trained_here"]
    lock = _lock(main)
    for run in runs:
        assert json.loads((main / "results" / "quick" / run / "metrics.json").read_text())["epochs"] == 1
        assert _trained_budget(main, lock, run) == TINY


# ---------------------------------------------------------------------------- experiment tasks (the search)

STEP = """import json, yaml
x = yaml.safe_load(open("params.yaml"))["x"]
open("model.txt", "w").write(str(x))
json.dump({"best_valid_ppl": 100 - x}, open("metrics.json", "w"))
"""
DVC_YAML = """stages:
  train:
    cmd: python step.py
    deps: [step.py]
    params: [x]
    outs: [model.txt]
    metrics:
      - metrics.json:
          cache: false
"""


@pytest.fixture()
def toy(tmp_path):
    """A two-file DVC project with a bare origin and a local DVC remote: DVC's mechanics, no torch."""
    proj, origin = tmp_path / "toy", tmp_path / "origin.git"
    proj.mkdir()
    (proj / "step.py").write_text(STEP)
    (proj / "dvc.yaml").write_text(DVC_YAML)
    (proj / "params.yaml").write_text("x: 1\n")
    env = tool_env()
    sh(["git", "init", "-q"], proj, env)
    sh(["dvc", "init", "-q"], proj, env)
    commit_all(proj)
    sh(["git", "init", "-q", "--bare", str(origin)], tmp_path, env)
    sh(["git", "remote", "add", "origin", str(origin)], proj, env)
    sh(["dvc", "remote", "add", "--local", "-d", "shared", str(tmp_path / "dvc-remote")], proj, env)
    return proj


@pytest.mark.dvc
def test_experiment_round_runs_pushes_and_pulls(toy, tmp_path, monkeypatch):
    for key, value in tool_env().items():
        if key.startswith("GIT_") or key == "PATH":
            monkeypatch.setenv(key, value)
    settings = ScaleoutSettings(workdir=str(tmp_path / "clones"))
    samples = {"r1-s1": {"x": 3}, "r1-s2": {"x": 5}}
    with pytest.raises(ScaleoutError, match="git push origin HEAD"):  # the commit is not on the origin yet
        run_experiment_round(
            samples, stage="train", metrics_file="metrics.json", backend="debug", settings=settings, repo=toy
        )
    sh(["git", "push", "-q", "origin", "HEAD:refs/heads/main"], toy, tool_env())
    (toy / "step.py").write_text(STEP + "# edited\n")
    with pytest.raises(ScaleoutError, match="uncommitted changes to step.py"):
        git_preflight(toy, "origin")
    sh(["git", "checkout", "step.py"], toy, tool_env())

    records = run_experiment_round(
        samples,
        stage="train",
        metrics_file="metrics.json",
        backend="debug",
        settings=settings,
        repo=toy,
        round_name="r1",
        echo=lambda _: None,
    )
    assert {n: r["status"] for n, r in records.items()} == {"r1-s1": "ok", "r1-s2": "ok"}
    assert metric(records, "metrics.json") == {"r1-s1": 97, "r1-s2": 95}
    refs = sh(["git", "ls-remote", "origin", "refs/exps/*"], toy, tool_env()).stdout
    assert "r1-s1" in refs and "r1-s2" in refs  # pushed by the tasks
    shown = json.loads(sh(["dvc", "exp", "show", "--json"], toy, tool_env()).stdout)
    names = {e["name"] for b in shown for e in (b.get("experiments") or []) for e in [e]}
    assert {"r1-s1", "r1-s2"} <= names, names  # pulled into the workspace
    # each experiment's outputs reached the shared DVC remote
    for x in ("3", "5"):
        md5 = hashlib.md5(x.encode()).hexdigest()
        assert (tmp_path / "dvc-remote" / "files" / "md5" / md5[:2] / md5[2:]).is_file()


@pytest.mark.dvc
def test_failed_experiment_is_reported_not_raised(toy, tmp_path, monkeypatch):
    for key, value in tool_env().items():
        if key.startswith("GIT_") or key == "PATH":
            monkeypatch.setenv(key, value)
    sh(["git", "push", "-q", "origin", "HEAD:refs/heads/main"], toy, tool_env())
    settings = ScaleoutSettings(workdir=str(tmp_path / "clones"))
    records = run_experiment_round(
        {"bad": {"x": "not a number"}, "good": {"x": 2}},
        stage="train",
        metrics_file="metrics.json",
        backend="debug",
        settings=settings,
        repo=toy,
        echo=lambda _: None,
    )
    assert records["good"]["status"] == "ok" and metric(records, "metrics.json") == {"bad": None, "good": 98}
    bad = records["bad"]
    assert bad["status"] == "failed" and bad["failed_step"] == "exp run" and "TypeError" in Path(bad["log"]).read_text()


# ---------------------------------------------------------------------------- the local backend (DVC's queue)

FOREACH_STEP = """import json, os, sys
run = sys.argv[1]
os.makedirs(f"out/{run}", exist_ok=True)
open(f"out/{run}/model.txt", "w").write(run)
json.dump({"v": len(run)}, open(f"out/{run}/metrics.json", "w"))
"""
FOREACH_DVC_YAML = """stages:
  train:
    foreach: [a, bb]
    do:
      cmd: python step.py ${item}
      deps: [step.py]
      outs:
        - out/${item}/model.txt
      metrics:
        - out/${item}/metrics.json:
            cache: false
  report:
    cmd: cat out/a/metrics.json out/bb/metrics.json > report.txt
    deps: [out]
    outs:
      - report.txt:
          cache: false
"""


@pytest.mark.dvc
def test_local_backend_queues_runs_and_fans_in_from_the_local_run_cache(tmp_path, monkeypatch):
    for key, value in tool_env().items():
        if key.startswith("GIT_") or key == "PATH":
            monkeypatch.setenv(key, value)
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "step.py").write_text(FOREACH_STEP)
    (proj / "dvc.yaml").write_text(FOREACH_DVC_YAML)
    sh(["git", "init", "-q"], proj, tool_env())
    sh(["dvc", "init", "-q"], proj, tool_env())
    commit_all(proj)
    lines: list[str] = []
    try:
        records = grid.run_local_queue(
            proj, ["a", "bb"], ScaleoutSettings(local_jobs=2), tmp_path / "logs", poll_s=1, echo=lines.append
        )
        assert queue_worker_pids(proj) == []  # the workers it started are stopped (dvc 3.67 leaves one alive)
    finally:
        end_queue_workers(proj)
    assert [(r["name"], r["status"]) for r in records] == [("a", "ok"), ("bb", "ok")]
    assert all(Path(r["log"]).is_file() for r in records)
    assert lines[-1] == "local: 2/2 finished"  # progress while the queue runs
    fan_in = grid.fan_in(proj, ["a", "bb"], False, tmp_path / "logs" / "fan-in.log")
    assert fan_in["returncode"] == 0 and fan_in["restored"] == ["train@a", "train@bb"] and fan_in["ran"] == ["report"]
    assert (proj / "report.txt").read_text() == '{"v": 1}{"v": 2}'
    assert set(yaml.safe_load((proj / "dvc.lock").read_text())["stages"]) == {"train@a", "train@bb", "report"}
