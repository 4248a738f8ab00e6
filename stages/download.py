"""DVC stage ``download@<corpus>``: fetch a corpus, verify its sha256 pins, write data/raw/<corpus>/.

Sources: the local mirror ($SCRN_DATA_MIRROR, else data.mirror in params.yaml), then the
upstream archive, then per-file network mirrors; or, with data.source.<corpus>: wmt13-raw, the
Botha-style rebuild from raw WMT13. With data.on_missing: skip an unobtainable corpus listed in
data.optional (never PTB or WikiText-2) becomes a MISSING.json marker (beside any verified files
it does have) that every dependent stage propagates. A mirror that does not exist or is empty is
an error whatever on_missing says, and a failed download leaves a verified copy as it was.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.cli import add_params, command_parser
from pipeline.config import data_settings, load_params
from pipeline.data.corpora import CORPORA, get_corpus
from pipeline.data.download import MIRROR_ENV, OFFLINE_ENV, download_corpus, resolve_mirror
from stages._common import run_stage

ENVIRONMENT = f"""environment variables:
  {MIRROR_ENV}  the local mirror directory (wins over data.mirror in params.yaml); it must
                    exist and hold the corpus files, e.g. ptb/ptb.train.txt
  {OFFLINE_ENV}=1    never touch the network: the local mirror is the only source
"""


def main(argv: list[str] | None = None) -> int:
    parser = command_parser("stages.download", __doc__, epilog=ENVIRONMENT)
    parser.add_argument("--corpus", required=True, choices=sorted(CORPORA))
    add_params(parser)
    parser.add_argument("--out", type=Path, help="output directory (default: data/raw/<corpus>)")
    args = parser.parse_args(argv)

    settings = data_settings(load_params(args.params))
    corpus = get_corpus(args.corpus)
    mirror = resolve_mirror(settings.mirror)
    out = args.out or Path("data/raw") / corpus.name
    source = settings.source_for(corpus.name)
    print(
        f"download {corpus.name}: {corpus.description}; source: {source}; "
        f"mirror: {mirror or f'none (set {MIRROR_ENV})'}"
    )
    record = download_corpus(
        corpus,
        out,
        mirror,
        on_missing=settings.on_missing,
        source_setting=source,
        optional=corpus.name in settings.optional,
    )
    if record.get("status") == "data_missing":
        kept = record.get("present_splits") or []
        kept_text = f"; kept the verified {', '.join(kept)} split(s) beside the marker" if kept else ""
        print(
            f"download {corpus.name}: NOT OBTAINED, marked missing in {out} (data.on_missing: skip){kept_text}\n"
            f"{record['reason']}"
        )
    else:
        print(f"download {corpus.name}: verified {len(corpus.files)} files from {record['source']} into {out}")
    return 0


if __name__ == "__main__":
    run_stage(main)
