"""Typed, validated views of params.yaml.

Stages read params.yaml once and hand these objects to the library; nothing else reads it.
Every error names the offending key (``runs.ptb-baseline-40-10.training.lr``) and what was
expected, so a typo fails before any work starts.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipeline.data.corpora import CORPORA

PROFILES = ("quick", "paper")
ON_MISSING = ("error", "skip")
ARCHS = ("scrn-baseline",)
LR_SCHEDULES = ("plateau", "after")
DEVICES = ("auto", "cpu", "cuda")


class ParamsError(ValueError):
    """A missing or invalid value in params.yaml."""


# ---------------------------------------------------------------------------- typed views


@dataclass(frozen=True)
class Budget:
    """What a profile caps: epochs, and tokens per pass of training and of evaluation."""

    max_epochs: int | None
    max_train_tokens: int | None
    max_eval_tokens: int | None

    @property
    def is_reduced(self) -> bool:
        return any(v is not None for v in (self.max_epochs, self.max_train_tokens, self.max_eval_tokens))


@dataclass(frozen=True)
class DataSettings:
    mirror: str | None
    on_missing: str
    corpora: tuple[str, ...]
    source: dict[str, str] = field(default_factory=dict)  # data.source: corpus -> archive | wmt13-raw

    def source_for(self, corpus: str) -> str:
        """The corpus's source setting; the first of its allowed sources (the archive) by default."""
        return self.source.get(corpus, CORPORA[corpus].sources[0])


@dataclass(frozen=True)
class ModelConfig:
    arch: str
    hidden: int
    context: int
    alpha: float


@dataclass(frozen=True)
class TrainConfig:
    batch_size: int
    bptt: int
    lr: float
    lr_decay: float
    lr_schedule: str  # plateau: decay when valid PPL >= best so far; after: lr0 * decay^max(0, e - decay_after)
    decay_after: int | None
    clip_norm: float
    init_scale: float
    epochs: int
    seed: int


@dataclass(frozen=True)
class RunConfig:
    name: str
    corpus: str
    profile: str
    model: ModelConfig
    training: TrainConfig
    budget: Budget

    @property
    def epochs(self) -> int:
        """Epochs actually run: the schedule's count, capped by the profile."""
        cap = self.budget.max_epochs
        return self.training.epochs if cap is None else min(cap, self.training.epochs)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def params_hash(self) -> str:
        """Identifies everything that determines the run's numbers (not the device)."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


# ---------------------------------------------------------------------------- validation helpers


def _fail(where: str, message: str) -> ParamsError:
    return ParamsError(f"params.yaml: {where}: {message}")


def _mapping(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise _fail(where, f"expected a mapping, got {value!r}")
    return value


def _require(d: dict, key: str, where: str) -> Any:
    if key not in d:
        raise _fail(f"{where}.{key}" if where else key, "missing")
    return d[key]


def _check_known(d: dict, known: set[str], where: str) -> None:
    unknown = sorted(set(d) - known)
    if unknown:
        raise _fail(f"{where}.{unknown[0]}", f"unknown key (known keys: {', '.join(sorted(known))})")


def _choice(value: Any, choices: tuple[str, ...], where: str) -> str:
    if value not in choices:
        raise _fail(where, f"expected one of {', '.join(choices)}, got {value!r}")
    return value


def _int(value: Any, where: str, minimum: int = 1, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        kind = "an integer" + (" or null" if allow_none else "")
        raise _fail(where, f"expected {kind} >= {minimum}, got {value!r}")
    return value


def _float(value: Any, where: str, low: float, high: float, low_open: bool = False, high_open: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok:
        value = float(value)
        ok = (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise _fail(where, f"expected a number in {interval}, got {value!r}")
    return value


# ---------------------------------------------------------------------------- parsing


def load_params(path: Path | str = "params.yaml") -> dict:
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path} not found; run from the repository root")
    try:
        params = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path} is not valid YAML: {exc}") from exc
    return _mapping(params, "(top level)")


def profile_name(params: dict) -> str:
    return _choice(params.get("profile", "quick"), PROFILES, "profile")


def budget(params: dict, profile: str | None = None) -> Budget:
    profile = profile or profile_name(params)
    profiles = _mapping(_require(params, "profiles", ""), "profiles")
    where = f"profiles.{profile}"
    section = _mapping(_require(profiles, profile, "profiles"), where)
    fields = ("max_epochs", "max_train_tokens", "max_eval_tokens")
    _check_known(section, set(fields), where)
    return Budget(**{f: _int(section.get(f), f"{where}.{f}", allow_none=True) for f in fields})


def data_settings(params: dict) -> DataSettings:
    section = _mapping(params.get("data", {}), "data")
    _check_known(section, {"mirror", "on_missing", "corpora", "source"}, "data")
    mirror = section.get("mirror")
    if mirror is not None and not isinstance(mirror, str):
        raise _fail("data.mirror", f"expected a path or null, got {mirror!r}")
    corpora = section.get("corpora", ["ptb"])
    if not isinstance(corpora, list):
        raise _fail("data.corpora", f"expected a list of corpus names, got {corpora!r}")
    for i, name in enumerate(corpora):
        _choice(name, tuple(sorted(CORPORA)), f"data.corpora[{i}]")
    source = section.get("source") or {}
    _mapping(source, "data.source")
    for name, value in source.items():
        if name not in CORPORA:
            raise _fail(f"data.source.{name}", f"unknown corpus (known corpora: {', '.join(sorted(CORPORA))})")
        allowed = CORPORA[name].sources
        if value not in allowed:
            why = "" if len(allowed) > 1 else " (only the published files: this corpus cannot be rebuilt from raw WMT13)"
            raise _fail(f"data.source.{name}", f"expected one of {', '.join(allowed)}, got {value!r}{why}")
    return DataSettings(
        mirror=mirror,
        on_missing=_choice(section.get("on_missing", "error"), ON_MISSING, "data.on_missing"),
        corpora=tuple(corpora),
        source=dict(source),
    )


def device_setting(params: dict) -> str:
    return _choice(params.get("device", "auto"), DEVICES, "device")


def _model_config(section: dict, where: str) -> ModelConfig:
    _check_known(section, {"arch", "hidden", "context", "alpha"}, where)
    return ModelConfig(
        arch=_choice(_require(section, "arch", where), ARCHS, f"{where}.arch"),
        hidden=_int(_require(section, "hidden", where), f"{where}.hidden"),
        context=_int(_require(section, "context", where), f"{where}.context"),
        alpha=_float(_require(section, "alpha", where), f"{where}.alpha", 0.0, 1.0, high_open=True),
    )


_TRAIN_FIELDS = {f for f in TrainConfig.__dataclass_fields__}


def _train_config(params: dict, section: dict, where: str) -> TrainConfig:
    """A run's ``training`` section: a named preset from ``training_presets`` plus overrides."""
    _check_known(section, _TRAIN_FIELDS | {"preset"}, where)
    merged: dict = {}
    if "preset" in section:
        presets = _mapping(_require(params, "training_presets", ""), "training_presets")
        name = section["preset"]
        if name not in presets:
            raise _fail(f"{where}.preset", f"no preset {name!r} in training_presets (have: {', '.join(presets)})")
        preset_where = f"training_presets.{name}"
        preset = _mapping(presets[name], preset_where)
        _check_known(preset, _TRAIN_FIELDS, preset_where)
        merged.update(preset)
    merged.update({k: v for k, v in section.items() if k != "preset"})

    def get(key: str) -> Any:
        return _require(merged, key, where)

    schedule = _choice(get("lr_schedule"), LR_SCHEDULES, f"{where}.lr_schedule")
    decay_after = _int(merged.get("decay_after"), f"{where}.decay_after", minimum=0, allow_none=True)
    if schedule == "after" and decay_after is None:
        raise _fail(f"{where}.decay_after", "required when lr_schedule is 'after'")
    return TrainConfig(
        batch_size=_int(get("batch_size"), f"{where}.batch_size"),
        bptt=_int(get("bptt"), f"{where}.bptt"),
        lr=_float(get("lr"), f"{where}.lr", 0.0, 100.0, low_open=True),
        lr_decay=_float(get("lr_decay"), f"{where}.lr_decay", 0.0, 1.0, low_open=True),
        lr_schedule=schedule,
        decay_after=decay_after,
        clip_norm=_float(get("clip_norm"), f"{where}.clip_norm", 0.0, 1e9, low_open=True),
        init_scale=_float(get("init_scale"), f"{where}.init_scale", 0.0, 10.0, low_open=True),
        epochs=_int(get("epochs"), f"{where}.epochs"),
        seed=_int(get("seed"), f"{where}.seed", minimum=0),
    )


def run_names(params: dict) -> list[str]:
    return list(_mapping(_require(params, "runs", ""), "runs"))


def run_config(params: dict, name: str, profile: str | None = None) -> RunConfig:
    runs = _mapping(_require(params, "runs", ""), "runs")
    if name not in runs:
        raise ParamsError(f"params.yaml: runs.{name}: no such run (have: {', '.join(runs)})")
    where = f"runs.{name}"
    section = _mapping(runs[name], where)
    _check_known(section, {"corpus", "model", "training"}, where)
    profile = profile or profile_name(params)
    return RunConfig(
        name=name,
        corpus=_choice(_require(section, "corpus", where), tuple(sorted(CORPORA)), f"{where}.corpus"),
        profile=profile,
        model=_model_config(_mapping(_require(section, "model", where), f"{where}.model"), f"{where}.model"),
        training=_train_config(params, _mapping(_require(section, "training", where), f"{where}.training"), f"{where}.training"),
        budget=budget(params, profile),
    )


def validate(params: dict) -> None:
    """Parse every section, so that a bad value anywhere is reported before work starts."""
    profile_name(params)
    for p in PROFILES:
        budget(params, p)
    data_settings(params)
    device_setting(params)
    for name in run_names(params):
        run_config(params, name)
