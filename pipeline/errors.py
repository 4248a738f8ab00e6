"""The failures a user can fix, one class each; stages print them as one paragraph, no traceback.

They live here, apart from the code that raises them, so that every stage can recognise them
without importing (and so depending on) the whole library.
"""

from __future__ import annotations


class ParamsError(ValueError):
    """A missing or invalid value in params.yaml."""


class DataUnavailableError(RuntimeError):
    """No source could provide the corpus (network down, mirror absent, ...)."""


class ChecksumError(RuntimeError):
    """A source provided bytes that are not the pinned ones."""


class DataFormatError(RuntimeError):
    """Bytes that cannot be used as they are: a corrupt or truncated archive, an unexpected
    archive layout, undecodable text, an empty split."""


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


class SearchError(RuntimeError):
    """The random search cannot go on (a results file of other settings, a round with no
    run that even started, a queue that does not answer)."""


class ScaleoutError(RuntimeError):
    """A precondition of a cluster submission that the user can fix (the message says how): an
    uncommitted workspace, a commit not pushed to the git remote, no default DVC remote."""


class RunInProgress(RuntimeError):
    """Another process is training the same run (same name and params hash) right now."""


EXPECTED_ERRORS = (
    ParamsError,
    DataUnavailableError,
    ChecksumError,
    DataFormatError,
    TrainingDiverged,
    FileNotFoundError,
    SearchError,
    ScaleoutError,
    RunInProgress,
)
