"""Which corpora exist, their splits, and the sources each can come from: names only.

The run configuration (``pipeline/config.py``) and the loading of prepared data need these names,
not the download URLs and checksums of ``pipeline/data/corpora.py``; keeping them apart means an
edit of a URL or a pin changes the fingerprint of the download stage only, and re-trains nothing.
``corpora.py`` builds its registry on these names, and a test checks that the two agree.
"""

from __future__ import annotations

SPLITS = ("train", "valid", "test")
SOURCE_ARCHIVE = "archive"  # the published files (mirror, upstream archive, per-file mirrors)
SOURCE_WMT13_RAW = "wmt13-raw"  # Botha-style rebuild from the raw WMT13 corpora (pipeline/data/wmt13.py)
BOTHA_LANGUAGES = ("fr", "es", "de", "cs", "ru")  # the paper's Table 6 order
# Russian's training text came from the Yandex corpus and its dev set is not a newstest, so only
# these four can be rebuilt from raw WMT13.
WMT13_REBUILDABLE = ("fr", "es", "de", "cs")

# corpus name -> the values data.source.<name> may take (the first is the default)
CORPUS_SOURCES: dict[str, tuple[str, ...]] = {
    "ptb": (SOURCE_ARCHIVE,),
    "wikitext-2": (SOURCE_ARCHIVE,),
    **{
        f"botha-{lang}": (SOURCE_ARCHIVE, SOURCE_WMT13_RAW) if lang in WMT13_REBUILDABLE else (SOURCE_ARCHIVE,)
        for lang in BOTHA_LANGUAGES
    },
}
CORPUS_NAMES = tuple(CORPUS_SOURCES)
