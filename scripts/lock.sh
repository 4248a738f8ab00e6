#!/usr/bin/env bash
# Regenerate requirements.lock from requirements.in in a throwaway environment.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"${PYTHON:-python3}" -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements.in
# torch's CPU wheel reports a local version (+cpu); pin the public one so pip picks the local file
"$tmp/venv/bin/python" -m pip freeze --all --exclude pip --exclude setuptools --exclude wheel \
  | sed -E 's/^torch==([0-9.]+)\+cpu$/torch==\1/' > requirements.lock
echo "wrote requirements.lock ($(wc -l < requirements.lock) packages)"
