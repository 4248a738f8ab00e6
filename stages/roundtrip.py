"""DVC stage ``tokenizer-roundtrip``: how well each candidate tokeniser reproduces the Botha data.

Detokenises the released Botha & Blunsom valid/test lines (data/raw/botha-<lang>/, verified by the
download stage) with one detokeniser, re-tokenises them with every candidate and writes the share
of lines reproduced exactly per language to data/stats/tokenizer-roundtrip.json (shown in the
report). The winner is the tokeniser of the WMT13 rebuild (pipeline/data/botha_style.py).
"""

from __future__ import annotations

from pipeline.cli import add_path, command_parser
from pipeline.data.botha_style import measure_corpora
from pipeline.data.corpora import BOTHA_LANGUAGES
from pipeline.fsutil import atomic_write_json
from stages._common import run_stage


def main(argv: list[str] | None = None) -> int:
    parser = command_parser("stages.roundtrip", __doc__)
    add_path(parser, "--raw", "data/raw", "download outputs")
    add_path(parser, "--out", "data/stats/tokenizer-roundtrip.json", "output JSON")
    args = parser.parse_args(argv)
    result = measure_corpora(args.raw, BOTHA_LANGUAGES)
    atomic_write_json(args.out, result)
    print(f"tokenizer-roundtrip: {result['metric']} (detokeniser {result['detokenizer']}); chosen {result['chosen']}")
    for lang, r in result["languages"].items():
        if r["status"] != "ok":
            print(f"  {lang}: data missing")
            continue
        cells = "  ".join(f"{name} {share:.2%}" for name, share in r["agreement"].items())
        print(f"  {lang}: {r['lines']:,} lines  {cells}")
    return 0


if __name__ == "__main__":
    run_stage(main)
