"""The one way the cluster layer runs DVC: :class:`Dvc`, a repository's ``dvc`` command.

Every command runs with this environment's tools first on PATH (:func:`tool_env`: the ``dvc``,
``git`` and ``python`` beside the running interpreter, so the stages DVC starts run in the
project's environment), and every failure is a :class:`~pipeline.errors.ScaleoutError` naming the
command and DVC's own message. Bookkeeping commands (``dvc queue ...``, ``dvc exp show``) are
bounded by :data:`COMMAND_TIMEOUT_S`; a :class:`Dvc` made with ``timeout_s=None`` runs commands
that train or move data (``dvc repro``, ``dvc exp pull``) for as long as they take.

``dvc queue start`` must never write into a pipe of ours (``leaves_daemons``): DVC daemonises
its workers by forking, the forks inherit the command's stdout and stderr, and a worker that
stays alive would keep the pipe open, so ``subprocess.run(capture_output=True)`` would wait for
end-of-file forever. Such a command writes to temporary files instead (:func:`run_leaving_daemons`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from pipeline.errors import ScaleoutError

COMMAND_TIMEOUT_S = 600.0


def tool_env() -> dict[str, str]:
    """This process's environment with the interpreter's own bin directory first on PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def dvc_executable() -> str:
    """The dvc of the running interpreter's environment (.venv/bin/dvc), else the one on PATH."""
    beside = Path(sys.executable).parent / "dvc"
    return str(beside) if beside.is_file() else "dvc"


def run_leaving_daemons(
    cmd: list[str], *, cwd=None, env: dict | None = None, timeout: float | None = None
) -> subprocess.CompletedProcess:
    """``subprocess.run(cmd, capture_output=True, text=True)`` for a command that forks daemons.

    Its stdout and stderr go to temporary files, not pipes: daemons it forks (``dvc queue
    start``'s workers) inherit them, and one that outlives the command would keep a pipe open and
    make the caller wait for end-of-file until it exits.
    """
    with tempfile.TemporaryFile(mode="w+") as out, tempfile.TemporaryFile(mode="w+") as err:
        proc = subprocess.run(
            cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err, text=True, timeout=timeout
        )
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(cmd, proc.returncode, out.read(), err.read())


class Dvc:
    """``dvc`` in one repository."""

    def __init__(self, repo: Path, executable: str | None = None, timeout_s: float | None = COMMAND_TIMEOUT_S):
        self.repo = Path(repo)
        self.executable = executable or dvc_executable()
        self.timeout_s = timeout_s

    def run(
        self, *args: str, check: bool = True, leaves_daemons: bool = False, merge_output: bool = False
    ) -> subprocess.CompletedProcess:
        """``dvc <args>``, its output captured as text (``merge_output``: stderr into stdout, in
        the order written). ``check``: a non-zero exit raises; a timeout or a missing ``dvc``
        always does."""
        cmd = [self.executable, *args]
        shown = " ".join(["dvc", *args])
        try:
            if leaves_daemons:
                proc = run_leaving_daemons(cmd, cwd=self.repo, env=tool_env(), timeout=self.timeout_s)
            else:
                proc = subprocess.run(
                    cmd,
                    cwd=self.repo,
                    env=tool_env(),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT if merge_output else subprocess.PIPE,
                    text=True,
                    timeout=self.timeout_s,
                )
        except subprocess.TimeoutExpired as exc:
            raise ScaleoutError(f"`{shown}` did not finish within {self.timeout_s:.0f}s in {self.repo}") from exc
        except FileNotFoundError as exc:
            raise ScaleoutError(f"`{self.executable}` not found: run from the project's environment (.venv)") from exc
        if check and proc.returncode != 0:
            output = ((proc.stderr or "") + proc.stdout).strip()[-2000:]
            raise ScaleoutError(f"`{shown}` failed (exit {proc.returncode}) in {self.repo}: {output}")
        return proc
