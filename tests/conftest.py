"""Shared fixtures. Real-data tests need a mirror laid out like ../shared/data:
$SCRN_DATA_MIRROR, else ../shared/data beside the repository. Without one they are skipped,
except under CI (CI=true, as .ci/run sets it, or CI=1), where a missing mirror is a failure: CI
never skips them.

Markers (registered in pyproject.toml; `pytest -m "not dvc and not real_data"` is the fast inner
loop): ``real_data`` is added here to every test that asks for the mirror; ``dvc``, ``docker``
and ``gpu`` are set by the tests themselves. A ``gpu`` test is skipped where CUDA is absent,
CI included: CI has no GPU."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from pipeline.data.corpora import PTB
from pipeline.data.download import download_corpus
from pipeline.data.prepare import prepare_corpus
from tests.scratch import make_cluster

REPO = Path(__file__).resolve().parents[1]
REAL_DATA_FIXTURES = {"mirror", "ptb_prepared", "cluster"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if REAL_DATA_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.real_data)
        if item.get_closest_marker("gpu") and not torch.cuda.is_available():
            item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU"))


@pytest.fixture()
def float64():
    """float64 as torch's default dtype for one test (modules of exact-math tests use it for all
    theirs: ``pytestmark = pytest.mark.usefixtures("float64")``); set at import, it would hold
    for the whole session, float32 tests included."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def under_ci() -> bool:
    """CI=true (.ci/run exports it) or CI=1 (what some runners set): tests that need something CI
    must have fail without it instead of skipping."""
    return os.environ.get("CI", "").lower() in ("true", "1")


def _mirror_root() -> Path | None:
    env = os.environ.get("SCRN_DATA_MIRROR")
    candidates = [Path(env)] if env else [REPO.parent / "shared" / "data"]
    for c in candidates:
        if (c / "ptb" / "ptb.train.txt").is_file():
            return c.resolve()
    return None


def require_mirror() -> Path:
    """The mirror's root; else a skip, or under CI a failure."""
    root = _mirror_root()
    if root is None:
        message = "real PTB data not found: set SCRN_DATA_MIRROR to a directory laid out like ../shared/data"
        if under_ci():
            pytest.fail(message + " (under CI real-data tests must run)")
        pytest.skip(message)
    return root


def download_and_prepare(corpus, root: Path, mirror: Path) -> Path:
    """``corpus`` downloaded from ``mirror`` into <root>/raw and prepared into <root>/prepared."""
    download_corpus(corpus, root / "raw", mirror)
    prepare_corpus(corpus, root / "raw", root / "prepared", root / "stats.json")
    return root


@pytest.fixture(scope="session")
def mirror() -> Path:
    return require_mirror()


@pytest.fixture(scope="session")
def ptb_prepared(mirror, tmp_path_factory) -> Path:
    """Real PTB, downloaded from the mirror and prepared once per test session."""
    return download_and_prepare(PTB, tmp_path_factory.mktemp("ptb"), mirror)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, mirror) -> dict:
    """A scratch workspace with a bare git origin and a DVC remote, PTB prepared and pushed
    (tests/scratch.py: make_cluster); one per test module, which may change it."""
    return make_cluster(tmp_path_factory.mktemp("cluster"), mirror)
