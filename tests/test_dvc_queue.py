"""pipeline/dvc_queue.py: running `dvc queue start` without waiting on the workers it leaves behind."""
from __future__ import annotations

import os
import signal
import stat
from pathlib import Path

import pytest

from pipeline.dvc_queue import run_leaving_daemons
from pipeline.scaleout import grid
from pipeline.search.backends import LocalQueueBackend

# A stand-in for `dvc queue start`: like DVC it forks a worker that inherits stdout and stderr
# and outlives the command (dvc 3.67 often leaves one alive after the queue empties). The worker
# lives until the fixture below kills it, or 10 minutes: a caller that waited for it would hit its
# timeout, or find it gone.
FAKE_DVC = """#!/usr/bin/env bash
echo "args: $*"
echo "to stderr" >&2
sleep 600 &
echo $! > "$(dirname "$0")/worker.pid"
exit {code}
"""


def fake_dvc(tmp_path: Path, code: int = 0) -> Path:
    path = tmp_path / "dvc"
    path.write_text(FAKE_DVC.format(code=code))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def lingering_worker(tmp_path):
    yield tmp_path / "worker.pid"
    pid_file = tmp_path / "worker.pid"
    if pid_file.is_file():
        try:
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_returns_while_a_forked_worker_holds_its_output(tmp_path, lingering_worker):
    # with the output captured through pipes this waits for the worker's end-of-file: the timeout
    proc = run_leaving_daemons([str(fake_dvc(tmp_path)), "queue", "start", "-j", "3"], cwd=tmp_path, timeout=300)
    assert proc.returncode == 0 and proc.stdout == "args: queue start -j 3\n" and proc.stderr == "to stderr\n"
    assert lingering_worker.is_file()  # the worker did start and is still alive when we return
    os.kill(int(lingering_worker.read_text()), 0)


def test_reports_a_failure_with_its_output(tmp_path, lingering_worker):
    proc = run_leaving_daemons([str(fake_dvc(tmp_path, code=3)), "queue", "start"], cwd=tmp_path, timeout=300)
    assert proc.returncode == 3 and "to stderr" in proc.stderr


@pytest.mark.parametrize("caller", ["search", "grid"])
def test_the_search_and_the_grid_start_the_queue_without_waiting_for_its_workers(tmp_path, lingering_worker,
                                                                                  monkeypatch, caller):
    """Their `dvc queue start` (leaves_daemons=True) must go through run_leaving_daemons."""
    dvc = fake_dvc(tmp_path)
    if caller == "search":
        backend = LocalQueueBackend(tmp_path, jobs=3, log=lambda _: None, command_timeout_s=300, dvc=str(dvc))
        proc = backend._dvc("queue", "start", "-j", "3", leaves_daemons=True)
    else:
        monkeypatch.setattr(grid, "_env", lambda: {**os.environ, "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"})
        proc = grid._dvc(tmp_path, "queue", "start", "-j", "3", leaves_daemons=True)
    assert proc.returncode == 0 and proc.stdout == "args: queue start -j 3\n"
    os.kill(int(lingering_worker.read_text()), 0)  # still alive: nobody waited for it
