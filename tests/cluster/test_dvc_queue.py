"""The cluster layer's DVC commands (pipeline/cluster/dvc.py) and queue (pipeline/cluster/queue.py):
`dvc queue start` without waiting on the workers it leaves behind, one error type and one
timeout for every command, and the `dvc queue status` poll that the grid and the search share."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
from pathlib import Path

import pytest

from pipeline.cluster.dvc import Dvc, run_leaving_daemons
from pipeline.cluster.queue import DvcQueue
from pipeline.errors import ScaleoutError
from tests.dvc_queue import FakeDvc

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


def test_the_queue_starts_its_workers_without_waiting_for_them(tmp_path, lingering_worker):
    """The search's and the grid's `dvc queue start` (DvcQueue.start) must go through
    run_leaving_daemons, or a worker that outlives the command would hang the caller."""
    queue = DvcQueue(Dvc(tmp_path, str(fake_dvc(tmp_path)), timeout_s=300), jobs=3, log=lambda _: None)
    queue.start()
    os.kill(int(lingering_worker.read_text()), 0)  # still alive: nobody waited for it


def test_piped_capture_would_hang_on_the_same_command(tmp_path, lingering_worker):
    """The failure mode run_leaving_daemons avoids, shown with the same fake command."""
    with pytest.raises(subprocess.TimeoutExpired):
        subprocess.run([str(fake_dvc(tmp_path)), "queue", "start"], capture_output=True, text=True, timeout=3)


# ---------------------------------------------------------------------------- the Dvc wrapper


def script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "dvc"
    path.write_text(f"#!/usr/bin/env bash\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_every_dvc_failure_is_a_scaleout_error_naming_the_command(tmp_path):
    failing = Dvc(tmp_path, str(script(tmp_path, 'echo "ERROR: no such experiment" >&2; exit 2')))
    with pytest.raises(ScaleoutError, match=r"`dvc queue logs x` failed \(exit 2\) in .*: ERROR: no such experiment"):
        failing.run("queue", "logs", "x")
    assert failing.run("queue", "logs", "x", check=False).returncode == 2  # unchecked: the caller decides
    with pytest.raises(ScaleoutError, match=r"`.*nowhere/dvc` not found: run from the project's environment"):
        Dvc(tmp_path, str(tmp_path / "nowhere" / "dvc")).run("exp", "show")


def test_a_dvc_command_past_the_timeout_is_stopped_and_named(tmp_path):
    slow = Dvc(tmp_path, str(script(tmp_path, "exec sleep 30")), timeout_s=1)
    with pytest.raises(ScaleoutError, match=r"`dvc queue status` did not finish within 1s"):
        slow.run("queue", "status", check=False)  # a timeout raises even unchecked


def test_merged_output_keeps_the_order_written(tmp_path):
    dvc = Dvc(tmp_path, str(script(tmp_path, "echo one; echo two >&2; echo three")), timeout_s=None)
    assert dvc.run("repro", merge_output=True).stdout == "one\ntwo\nthree\n"


# ---------------------------------------------------------------------------- the queue status poll

OK = subprocess.CompletedProcess([], 0, "Task     Name    Created    Status\nd7a1b2c  s-r1-1  10:25 AM   Running\n", "")
BAD = subprocess.CompletedProcess([], 255, "", "ERROR: unexpected error - Expecting value: line 1 column 1 (char 0)")


def test_a_failed_queue_status_poll_is_retried(tmp_path):
    """`dvc queue status` can catch a worker's file half-written and fail once; the poll retries."""
    answers = [BAD, OK]
    queue = DvcQueue(FakeDvc(tmp_path, {("queue", "status"): answers}), jobs=2, log=lambda _: None, retry_pause_s=0)
    assert queue.states() == {"s-r1-1": "Running"} and answers == []


def test_a_queue_status_poll_that_keeps_failing_stops_with_dvcs_message(tmp_path):
    answers = [BAD, BAD, BAD, OK]
    queue = DvcQueue(FakeDvc(tmp_path, {("queue", "status"): answers}), jobs=2, log=lambda _: None, retry_pause_s=0)
    with pytest.raises(
        ScaleoutError,
        match=r"`dvc queue status` failed \(exit 255\) 3 times in a row: "
        r"ERROR: unexpected error - Expecting value",
    ):
        queue.states()
    assert answers == [OK]  # three tries, no more


def test_a_queue_wait_past_its_timeout_kills_and_removes_what_is_left(tmp_path):
    status = subprocess.CompletedProcess(
        [],
        0,
        "Task  Name  Created  Status\n"
        "a1b2c3d  s-1  10:25 AM  Success\nb2c3d4e  s-2  10:25 AM  Running\n"
        "c3d4e5f  s-3  10:25 AM  Queued\n",
        "",
    )
    done = subprocess.CompletedProcess([], 0, "", "")
    dvc = FakeDvc(
        tmp_path,
        {("queue", "status"): status, ("queue", "kill", "s-2", "s-3"): done, ("queue", "remove", "s-2", "s-3"): done},
    )
    lines: list[str] = []
    queue = DvcQueue(dvc, jobs=1, log=lines.append, label="search", poll_s=0)
    states = queue.wait(["s-1", "s-2", "s-3"], timeout_s=0)
    assert states["s-1"] == "Success" and dvc.ran[-2:] == [
        ("queue", "kill", "s-2", "s-3"),
        ("queue", "remove", "s-2", "s-3"),
    ]
    assert lines == ["search: 1/3 finished", "search: timed out after 0s; stopping 2 run(s)"]
