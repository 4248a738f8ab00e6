"""DVC stage ``prepare@<corpus>``: vocabulary from train, <eos> per line, token ids, statistics.

Reads data/raw/<corpus>/ and writes data/prepared/<corpus>/{vocab.txt,train.npy,valid.npy,
test.npy} and data/stats/<corpus>.json; a missing-corpus marker is passed on unchanged.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.cli import command_parser
from pipeline.data.corpora import CORPORA, get_corpus
from pipeline.data.prepare import prepare_corpus
from stages._common import run_stage


def main(argv: list[str] | None = None) -> int:
    parser = command_parser("stages.prepare", __doc__)
    parser.add_argument("--corpus", required=True, choices=sorted(CORPORA))
    parser.add_argument("--raw", type=Path, help="download output (default: data/raw/<corpus>)")
    parser.add_argument("--out", type=Path, help="output directory (default: data/prepared/<corpus>)")
    parser.add_argument("--stats", type=Path, help="statistics JSON (default: data/stats/<corpus>.json)")
    args = parser.parse_args(argv)

    corpus = get_corpus(args.corpus)
    raw = args.raw or Path("data/raw") / corpus.name
    out = args.out or Path("data/prepared") / corpus.name
    stats_path = args.stats or Path("data/stats") / f"{corpus.name}.json"
    stats = prepare_corpus(corpus, raw, out, stats_path)
    if stats["status"] == "data_missing":
        missing = stats.get("missing_splits")
        detail = f" (missing: {', '.join(missing)}; statistics of the verified splits only)" if missing else ""
        print(f"prepare {corpus.name}: corpus missing, marker passed on to {out}{detail}")
    else:
        print(f"prepare {corpus.name}: vocabulary {stats['vocab_size']:,} -> {out}")
    for split, s in stats.get("splits", {}).items():
        oov = "     —" if s["oov"] is None else f"{s['oov']:>6,}"
        print(
            f"  {split:5s}  tokens {s['tokens']:>10,}  types {s['types']:>7,}  oov {oov}  "
            f"<unk> {s['unk_share']:.2%}  type/token {s['type_token_ratio']:.4f}"
        )
    return 0


if __name__ == "__main__":
    run_stage(main)
