#!/usr/bin/env bash
# Create .venv with the exact dependencies of requirements.lock. Idempotent: it reinstalls only
# when the lock file changed since the last successful install.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  echo "error: Python 3.11 is required (found $("$PYTHON" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv

stamp=.venv/.requirements.lock.sha256
want=$(sha256sum requirements.lock | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing requirements.lock into .venv"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
  echo "$want" > "$stamp"
fi
echo "setup: .venv ready ($(.venv/bin/python -c 'import torch, dvc.version as d; print("torch", torch.__version__, "dvc", d.__version__)'))"
