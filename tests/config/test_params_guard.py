"""params.yaml mistakes that YAML or a lenient reader would let pass: a duplicated key (YAML keeps
the last one), an unknown top-level key (a typo of a section), and the optional-corpus list."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline import config
from tests.stage_cli import run_stage

REPO = Path(__file__).resolve().parents[2]
PARAMS_TEXT = (REPO / "params.yaml").read_text()


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return path


def _line_of(text: str, needle: str, start: int = 0) -> int:
    return text[: text.index(needle, start)].count("\n") + 1


@pytest.mark.parametrize(
    "typo, meant",
    [("profle: paper", "profile"), ("devce: cuda", "device"), ("run:\n  x: {}", "runs"), ("datas: {}", "data")],
)
def test_an_unknown_top_level_key_fails_naming_it_and_the_nearest_known_key(tmp_path, typo, meant):
    path = _write(tmp_path, PARAMS_TEXT + f"\n{typo}\n")
    with pytest.raises(config.ParamsError) as err:
        config.load_params(path)
    key = typo.split(":")[0]
    assert f"{key}: unknown top-level key (did you mean {meant!r}?" in str(err.value)


def test_an_unknown_top_level_key_fails_validation_of_a_dict_too():
    params = config.load_params(REPO / "params.yaml")
    with pytest.raises(config.ParamsError, match="profle: unknown top-level key"):
        config.validate({**params, "profle": "paper"})


def test_a_duplicated_run_fails_with_both_line_numbers(tmp_path):
    """Outside DVC, a second entry of one run would silently replace the first."""
    entry = (
        "  ptb-baseline-40-10:\n    corpus: ptb\n    model: {preset: scrn-baseline, hidden: 40, context: 10}\n"
        "    training: {preset: baseline-ours}\n"
    )
    text = PARAMS_TEXT.replace(entry, entry + entry.replace("baseline-ours}", "baseline-ours, lr: 0.5}"), 1)
    first = _line_of(text, entry)
    with pytest.raises(config.ParamsError) as err:
        config.load_params(_write(tmp_path, text))
    assert f"runs.ptb-baseline-40-10: the key appears twice, at lines {first} and {first + 4}" in str(err.value)


@pytest.mark.parametrize(
    "old, new, key",
    [
        ("profile: quick\n", "profile: quick\nprofile: paper\n", "profile"),
        ("    max_epochs: 2\n", "    max_epochs: 2\n    max_epochs: 3\n", "profiles.quick.max_epochs"),
        (
            "{preset: scrn-baseline, hidden: 40, context: 10}",
            "{preset: scrn-baseline, hidden: 40, hidden: 50, context: 10}",
            "runs.ptb-baseline-40-10.model.hidden",
        ),
    ],
)
def test_a_duplicated_key_anywhere_fails_naming_its_path_and_lines(tmp_path, old, new, key):
    text = PARAMS_TEXT.replace(old, new, 1)
    line = _line_of(text, new)
    with pytest.raises(config.ParamsError) as err:
        config.load_params(_write(tmp_path, text))
    assert f"{key}: the key appears twice, at lines" in str(err.value)
    assert str(line) in str(err.value)


def test_every_stage_refuses_a_duplicated_key_outside_dvc(tmp_path):
    """The check is in load_params, so a stage run by hand fails too, in one line."""
    path = _write(tmp_path, PARAMS_TEXT.replace("profile: quick\n", "profile: quick\nprofile: paper\n", 1))
    proc = run_stage("train", "--list", "--params", path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: ") and "profile: the key appears twice, at lines 14 and 15" in proc.stderr


def test_the_repository_params_have_no_duplicate_or_unknown_key():
    params = config.load_params(REPO / "params.yaml")
    assert set(params) <= set(config.TOP_LEVEL_KEYS)


# ---------------------------------------------------------------------------- data.optional


def test_the_repository_skips_only_the_botha_corpora():
    settings = config.data_settings(config.load_params(REPO / "params.yaml"))
    assert settings.on_missing == "skip"
    assert set(settings.optional) == {"botha-fr", "botha-es", "botha-de", "botha-cs", "botha-ru"}


def test_the_default_optional_corpora_are_all_but_ptb_and_wikitext2():
    settings = config.data_settings({"data": {"on_missing": "skip"}})
    assert set(settings.optional) == {"botha-fr", "botha-es", "botha-de", "botha-cs", "botha-ru"}
    assert config.data_settings({"data": {"on_missing": "skip", "optional": []}}).optional == ()


@pytest.mark.parametrize("corpus", ["ptb", "wikitext-2"])
def test_ptb_and_wikitext2_cannot_be_optional(corpus):
    with pytest.raises(config.ParamsError, match=rf"data\.optional\[1\]: {corpus} carries the main tables"):
        config.data_settings({"data": {"optional": ["botha-fr", corpus]}})


@pytest.mark.parametrize("mirror", ["", "  "])
def test_an_empty_data_mirror_is_refused(mirror):
    with pytest.raises(config.ParamsError, match="data.mirror: expected a path or null"):
        config.data_settings({"data": {"mirror": mirror}})
