"""pipeline/dvc_queue.py: running `dvc queue start` without waiting on the workers it leaves behind."""
from __future__ import annotations

import os
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

from pipeline.dvc_queue import run_leaving_daemons

# A stand-in for `dvc queue start`: like DVC it forks a worker that inherits stdout and stderr
# and outlives the command (dvc 3.67 often leaves one alive after the queue empties).
FAKE_DVC = """#!/usr/bin/env bash
echo "args: $*"
echo "to stderr" >&2
sleep 60 &
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
    # with the output captured through pipes this waits the worker's 60 s and times out
    begun = time.monotonic()
    proc = run_leaving_daemons([str(fake_dvc(tmp_path)), "queue", "start", "-j", "3"], cwd=tmp_path, timeout=20)
    assert proc.returncode == 0 and proc.stdout == "args: queue start -j 3\n" and proc.stderr == "to stderr\n"
    assert time.monotonic() - begun < 20
    assert lingering_worker.is_file()  # the worker did start and is still alive when we return
    os.kill(int(lingering_worker.read_text()), 0)


def test_reports_a_failure_with_its_output(tmp_path, lingering_worker):
    proc = run_leaving_daemons([str(fake_dvc(tmp_path, code=3)), "queue", "start"], cwd=tmp_path, timeout=20)
    assert proc.returncode == 3 and "to stderr" in proc.stderr


def test_piped_capture_would_hang_on_the_same_command(tmp_path, lingering_worker):
    """The failure mode run_leaving_daemons avoids, shown with the same fake command."""
    with pytest.raises(subprocess.TimeoutExpired):
        subprocess.run([str(fake_dvc(tmp_path)), "queue", "start"], capture_output=True, text=True, timeout=3)
