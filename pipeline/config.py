"""Typed, validated views of params.yaml.

Stages read params.yaml once and hand these objects to the library; nothing else reads it.
Every error names the offending key (``runs.ptb-baseline-40-10.training.lr``) and what was
expected, so a typo fails before any work starts.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import yaml

from pipeline.data.catalogue import CORPUS_NAMES, CORPUS_SOURCES
from pipeline.errors import ParamsError
from pipeline.validation import as_bool, as_float, as_int, as_mapping, check_known, choice, fail, require

PROFILES = ("quick", "paper")
MAX_SEED = 2**32 - 1  # the seed range numpy and most frameworks accept (torch takes 64 bits)
ON_MISSING = ("error", "skip")
# The corpora of the main tables: data.on_missing: skip never applies to them (data.optional)
REQUIRED_CORPORA = ("ptb", "wikitext-2")
# Every section a stage or tool reads; any other top-level key is a typo that would be ignored
TOP_LEVEL_KEYS = (
    "profile",
    "profiles",
    "data",
    "device",
    "scaleout",
    "model_presets",
    "training_presets",
    "runs",
    "search",
)
ARCHS = ("scrn-baseline", "scrn", "lstm")
DROPOUT_REGIMES = ("none", "naive", "variational")
VD_H_MASKS = ("tied", "independent")
VD_SCOPES = ("batch", "sequence")
LR_SCHEDULES = ("plateau", "after")
DEVICES = ("auto", "cpu", "cuda")
# How the SCRN hidden recurrence runs (pipeline/models/recurrence.py); every choice computes the
# same values and gradients. auto: the device's fast kernel wherever it is exact, else loop.
RECURRENCE_IMPLS = ("auto", "loop", "scan", "tanh-rnn", "triton")
CUDA_GRAPH_MODES = ("auto", "on", "off")


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
    optional: tuple[str, ...] = ()  # corpora that on_missing: skip may mark missing (data.optional)

    def source_for(self, corpus: str) -> str:
        """The corpus's source setting; the first of its allowed sources (the archive) by default."""
        return self.source.get(corpus, CORPUS_SOURCES[corpus][0])


@dataclass(frozen=True)
class DropoutConfig:
    """Where and how units are dropped; see pipeline/models/lm.py for the exact semantics."""

    regime: str = "none"  # none | naive (fresh masks per step) | variational (one mask per window)
    p_i: float = 0.0  # embedding output
    p_h: float = 0.0  # recurrent h (variational only)
    p_o: float = 0.0  # each layer's output
    context: bool = True  # also drop s in the output (Table 5 ablation: false)
    vd_h_mask: str = "tied"  # tied: authors' code (one h mask for recurrence and output); independent: eq. (9)
    vd_mask_scope: str = "batch"  # batch: authors' code (one mask for the batch); sequence: Gal & Ghahramani


@dataclass(frozen=True)
class SobolevConfig:
    beta: float = 0.0
    layers: tuple[int, ...] | None = None  # 1-based layer indices; None: all layers


@dataclass(frozen=True)
class ModelConfig:
    arch: str  # scrn-baseline (one layer, one-hot inputs) | scrn (stacked, dense embedding) | lstm
    hidden: int
    context: int = 0  # SCRN only
    alpha: float = 0.0  # SCRN only
    layers: int = 1
    tie: bool = False  # V = E^T
    context_in_softmax: bool = True  # Table 5 ablation: false
    dropout: DropoutConfig = DropoutConfig()
    sobolev: SobolevConfig = SobolevConfig()
    recurrence_impl: str = "auto"  # SCRN only: auto | loop | scan | tanh-rnn | triton (same numbers, different speed)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        """Inverse of ``dataclasses.asdict``, for configurations saved beside model weights."""
        sob = dict(d.get("sobolev", {}))
        if sob.get("layers") is not None:
            sob["layers"] = tuple(sob["layers"])
        return cls(**{**d, "dropout": DropoutConfig(**d.get("dropout", {})), "sobolev": SobolevConfig(**sob)})


@dataclass(frozen=True)
class TrainConfig:
    batch_size: int
    bptt: int
    lr: float
    lr_decay: float
    lr_schedule: str  # plateau: decay when valid PPL >= best so far; after: lr0 * decay^max(0, e - decay_after)
    decay_after: int | None
    plateau_threshold: float  # plateau: decay unless valid PPL beats the best so far by more than this
    clip_norm: float
    init_scale: float
    epochs: int
    seed: int
    # auto | on | off: capture the training step as one CUDA graph (pipeline/train/graphed.py).
    # auto = on on CUDA, off on a CPU; on a CPU, on runs the same static-buffer step uncaptured.
    # How the step runs, not what it computes: kept out of params_hash, like the device.
    cuda_graph: str = "auto"


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
        d = self.to_dict()
        d["training"].pop("cuda_graph")  # execution only (see TrainConfig); old hashes stay valid
        blob = json.dumps(d, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


# ---------------------------------------------------------------------------- parsing


# libyaml's safe loader where PyYAML has it (its wheels do): every stage parses params.yaml, 7x faster
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_params(path: Path | str = "params.yaml") -> dict:
    """params.yaml as a dict; a duplicated key or an unknown top-level key fails here, in every stage."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path} not found; run from the repository root")
    loader = SAFE_LOADER(path.read_text())
    try:
        node = loader.get_single_node()
        if node is not None:
            _check_duplicate_keys(node, path, "")
        params = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path} is not valid YAML: {exc}") from exc
    finally:
        loader.dispose()
    params = as_mapping(params, "(top level)")
    check_top_level(params, path)
    return params


def _check_duplicate_keys(node: yaml.Node, path: Path, where: str) -> None:
    """YAML keeps the last of two equal keys and drops the first without a word: refuse them."""
    if isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _check_duplicate_keys(item, path, f"{where}[{i}]")
    if not isinstance(node, yaml.MappingNode):
        return
    first_line: dict[str, int] = {}
    for key_node, value_node in node.value:
        key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
        line = key_node.start_mark.line + 1
        key_path = f"{where}.{key}" if where else key
        if key in first_line:
            raise ParamsError(
                f"{path}: {key_path}: the key appears twice, at lines {first_line[key]} and {line}; "
                "YAML would keep only the second, so remove or rename one of them"
            )
        first_line[key] = line
        _check_duplicate_keys(value_node, path, key_path)


def check_top_level(params: dict, path: Path | str = "params.yaml") -> None:
    """Every top-level key is a section some stage reads; a typo (``profle``) would otherwise be ignored."""
    for key in params:
        if key not in TOP_LEVEL_KEYS:
            near = difflib.get_close_matches(str(key), TOP_LEVEL_KEYS, n=1)
            hint = f"did you mean {near[0]!r}? " if near else ""
            raise ParamsError(f"{path}: {key}: unknown top-level key ({hint}known keys: {', '.join(TOP_LEVEL_KEYS)})")


def profile_name(params: dict) -> str:
    return choice(params.get("profile", "quick"), PROFILES, "profile")


def budget(params: dict, profile: str | None = None) -> Budget:
    profile = profile or profile_name(params)
    profiles = as_mapping(require(params, "profiles", ""), "profiles")
    where = f"profiles.{profile}"
    section = as_mapping(require(profiles, profile, "profiles"), where)
    fields = ("max_epochs", "max_train_tokens", "max_eval_tokens")
    check_known(section, set(fields), where)
    return Budget(**{f: as_int(section.get(f), f"{where}.{f}", allow_none=True) for f in fields})


def data_settings(params: dict) -> DataSettings:
    section = as_mapping(params.get("data", {}), "data")
    check_known(section, {"mirror", "on_missing", "corpora", "source", "optional"}, "data")
    mirror = section.get("mirror")
    if mirror is not None and (not isinstance(mirror, str) or not mirror.strip()):
        raise fail("data.mirror", f"expected a path or null (an empty value), got {mirror!r}")
    corpora = section.get("corpora", ["ptb"])
    if not isinstance(corpora, list):
        raise fail("data.corpora", f"expected a list of corpus names, got {corpora!r}")
    for i, name in enumerate(corpora):
        choice(name, tuple(sorted(CORPUS_NAMES)), f"data.corpora[{i}]")
    source = section.get("source") or {}
    as_mapping(source, "data.source")
    for name, value in source.items():
        if name not in CORPUS_SOURCES:
            raise fail(f"data.source.{name}", f"unknown corpus (known corpora: {', '.join(sorted(CORPUS_NAMES))})")
        allowed = CORPUS_SOURCES[name]
        if value not in allowed:
            why = (
                "" if len(allowed) > 1 else " (only the published files: this corpus cannot be rebuilt from raw WMT13)"
            )
            raise fail(f"data.source.{name}", f"expected one of {', '.join(allowed)}, got {value!r}{why}")
    return DataSettings(
        mirror=mirror,
        on_missing=choice(section.get("on_missing", "error"), ON_MISSING, "data.on_missing"),
        corpora=tuple(corpora),
        source=dict(source),
        optional=_optional_corpora(
            section.get("optional", [c for c in sorted(CORPUS_NAMES) if c not in REQUIRED_CORPORA])
        ),
    )


def _optional_corpora(optional: Any) -> tuple[str, ...]:
    """data.optional: the corpora that data.on_missing: skip may mark missing (never PTB or WikiText-2;
    by default every other corpus)."""
    if optional is None:
        optional = []
    if not isinstance(optional, list):
        raise fail("data.optional", f"expected a list of corpus names, got {optional!r}")
    for i, name in enumerate(optional):
        choice(name, tuple(sorted(CORPUS_NAMES)), f"data.optional[{i}]")
        if name in REQUIRED_CORPORA:
            raise fail(
                f"data.optional[{i}]",
                f"{name} carries the main tables and cannot be optional: a missing "
                f"{name} must fail, never become 'data missing'; remove it from data.optional",
            )
    return tuple(optional)


def device_setting(params: dict) -> str:
    return choice(params.get("device", "auto"), DEVICES, "device")


def _with_preset(
    params: dict, section: dict, presets_key: str, known: set[str], where: str
) -> tuple[dict, Callable[[str], str]]:
    """``section`` merged over the preset it names in ``params[presets_key]`` (if any), and a
    function giving the key path to name in an error: the preset's where the value comes from it."""
    check_known(section, known | {"preset"}, where)
    preset: dict = {}
    preset_where = ""
    if "preset" in section:
        presets = as_mapping(require(params, presets_key, ""), presets_key)
        name = section["preset"]
        if not isinstance(name, str) or name not in presets:
            raise fail(f"{where}.preset", f"no preset {name!r} in {presets_key} (have: {', '.join(presets)})")
        preset_where = f"{presets_key}.{name}"
        preset = as_mapping(presets[name], preset_where)
        check_known(preset, known, preset_where)
    own = {k: v for k, v in section.items() if k != "preset"}

    def at(key: str) -> str:
        return f"{preset_where}.{key}" if key in preset and key not in own else f"{where}.{key}"

    return {**preset, **own}, at


def _dropout_config(section: Any, where: str) -> DropoutConfig:
    section = as_mapping(section, where)
    check_known(section, set(DropoutConfig.__dataclass_fields__), where)
    d = DropoutConfig()
    cfg = DropoutConfig(
        regime=choice(section.get("regime", d.regime), DROPOUT_REGIMES, f"{where}.regime"),
        **{p: as_float(section.get(p, 0.0), f"{where}.{p}", 0.0, 1.0, high_open=True) for p in ("p_i", "p_h", "p_o")},
        context=as_bool(section.get("context", d.context), f"{where}.context"),
        vd_h_mask=choice(section.get("vd_h_mask", d.vd_h_mask), VD_H_MASKS, f"{where}.vd_h_mask"),
        vd_mask_scope=choice(section.get("vd_mask_scope", d.vd_mask_scope), VD_SCOPES, f"{where}.vd_mask_scope"),
    )
    if cfg.regime == "none" and (cfg.p_i or cfg.p_h or cfg.p_o):
        raise fail(f"{where}.regime", "is none but dropout rates are set; choose naive or variational")
    if cfg.regime == "naive" and cfg.p_h:
        raise fail(f"{where}.p_h", "naive dropout never drops the recurrence (section 4.2); use variational")
    return cfg


def _sobolev_config(section: Any, where: str, n_layers: int) -> SobolevConfig:
    section = as_mapping(section, where)
    check_known(section, {"beta", "layers"}, where)
    layers = section.get("layers")
    if layers is not None:
        if not isinstance(layers, list) or not layers:
            raise fail(f"{where}.layers", f"expected a list of 1-based layer indices or null, got {layers!r}")
        layers = tuple(as_int(v, f"{where}.layers[{i}]") for i, v in enumerate(layers))
        if max(layers) > n_layers:
            raise fail(f"{where}.layers", f"the model has {n_layers} layer(s), got {list(layers)}")
    return SobolevConfig(beta=as_float(section.get("beta", 0.0), f"{where}.beta", 0.0, 1e6), layers=layers)


_MODEL_FIELDS = set(ModelConfig.__dataclass_fields__)


def _model_config(params: dict, section: dict, where: str) -> ModelConfig:
    """A run's ``model`` section: a named preset from ``model_presets`` plus overrides."""
    m, at = _with_preset(params, section, "model_presets", _MODEL_FIELDS, where)
    arch = choice(require(m, "arch", where), ARCHS, at("arch"))
    layers = as_int(m.get("layers", 1), at("layers"))
    is_scrn = arch in ("scrn", "scrn-baseline")
    cfg = ModelConfig(
        arch=arch,
        hidden=as_int(require(m, "hidden", where), at("hidden")),
        context=as_int(require(m, "context", where), at("context")) if is_scrn else 0,
        alpha=as_float(require(m, "alpha", where), at("alpha"), 0.0, 1.0, high_open=True) if is_scrn else 0.0,
        layers=layers,
        tie=as_bool(m.get("tie", False), at("tie")),
        context_in_softmax=as_bool(m.get("context_in_softmax", True), at("context_in_softmax")),
        dropout=_dropout_config(m.get("dropout", {}), at("dropout")),
        sobolev=_sobolev_config(m.get("sobolev", {}), at("sobolev"), layers),
        recurrence_impl=choice(m.get("recurrence_impl", "auto"), RECURRENCE_IMPLS, at("recurrence_impl")),
    )
    if not is_scrn and any(k in m for k in ("context", "alpha")):
        raise fail(f"{where}.arch", "lstm has no context state: remove context and alpha")
    if not is_scrn and "recurrence_impl" in m:
        raise fail(f"{where}.recurrence_impl", "applies to the SCRN only (the LSTM runs nn.LSTM); remove it")
    if (
        cfg.recurrence_impl not in ("auto", "loop")
        and cfg.dropout.regime == "variational"
        and cfg.dropout.vd_mask_scope == "sequence"
        and cfg.dropout.p_h > 0
    ):
        raise fail(
            f"{where}.recurrence_impl",
            f"{cfg.recurrence_impl} cannot hold a per-sequence h mask (vd_mask_scope: sequence); use auto or loop",
        )
    if not is_scrn and cfg.sobolev.beta:
        raise fail(f"{where}.sobolev", "the Sobolev penalty is defined for SCRN layers only")
    if not cfg.context_in_softmax and not is_scrn:
        raise fail(f"{where}.context_in_softmax", "only the SCRN has a context state")
    if arch == "scrn-baseline":
        plain = (
            layers == 1
            and not cfg.tie
            and cfg.dropout == DropoutConfig()
            and cfg.sobolev == SobolevConfig()
            and cfg.context_in_softmax
        )
        if not plain:
            raise fail(f"{where}.arch", "scrn-baseline is the unregularised one-layer model of Table 2; use arch: scrn")
    return cfg


_TRAIN_FIELDS = {f for f in TrainConfig.__dataclass_fields__}


def _train_config(params: dict, section: dict, where: str) -> TrainConfig:
    """A run's ``training`` section: a named preset from ``training_presets`` plus overrides."""
    merged, at = _with_preset(params, section, "training_presets", _TRAIN_FIELDS, where)

    def get(key: str) -> Any:
        return require(merged, key, where)

    schedule = choice(get("lr_schedule"), LR_SCHEDULES, at("lr_schedule"))
    decay_after = as_int(merged.get("decay_after"), at("decay_after"), minimum=0, allow_none=True)
    if schedule == "after" and decay_after is None:
        raise fail(at("decay_after"), "required when lr_schedule is 'after'")
    return TrainConfig(
        batch_size=as_int(get("batch_size"), at("batch_size")),
        bptt=as_int(get("bptt"), at("bptt")),
        lr=as_float(get("lr"), at("lr"), 0.0, 100.0, low_open=True),
        lr_decay=as_float(get("lr_decay"), at("lr_decay"), 0.0, 1.0, low_open=True),
        lr_schedule=schedule,
        decay_after=decay_after,
        plateau_threshold=as_float(merged.get("plateau_threshold", 0.0), at("plateau_threshold"), 0.0, 1e6),
        clip_norm=as_float(get("clip_norm"), at("clip_norm"), 0.0, 1e9, low_open=True),
        init_scale=as_float(get("init_scale"), at("init_scale"), 0.0, 10.0, low_open=True),
        epochs=as_int(get("epochs"), at("epochs")),
        seed=_seed(get("seed"), at("seed")),
        cuda_graph=_cuda_graph(merged.get("cuda_graph", "auto"), at("cuda_graph")),
    )


def _seed(value: Any, where: str) -> int:
    return as_int(value, where, minimum=0, maximum=MAX_SEED)


def _cuda_graph(value: Any, where: str) -> str:
    """auto | on | off; YAML 1.1 reads a bare on/off as a boolean, so true/false mean on/off."""
    if isinstance(value, bool):
        value = "on" if value else "off"
    return choice(value, CUDA_GRAPH_MODES, where)


def run_names(params: dict) -> list[str]:
    return list(as_mapping(require(params, "runs", ""), "runs"))


SEED_SUFFIX = re.compile(r"^(?P<base>.+)-seed(?P<seed>[0-9]+)$")


def seed_groups(params: dict, profile: str | None = None) -> dict[str, list[str]]:
    """Runs that repeat another run with a different seed: base run -> [base, base-seed2, ...].

    A run named ``<base>-seed<N>`` is seed N of run ``<base>``: its configuration must be the
    base's in everything but the seed (``seed: N`` at the run's top level), so that the group's
    spread is run-to-run noise and nothing else. Each seed is its own run (its own DVC stage
    ``train@<base>-seed<N>``), so seeds train in parallel wherever stages do; the base name keeps
    its meaning (seed 1 unless its preset says otherwise). Members are ordered by seed.
    """
    names = run_names(params)
    groups: dict[str, list[str]] = {}
    for name in names:
        match = SEED_SUFFIX.match(name)
        if match is None:
            continue
        base, seed = match["base"], int(match["seed"])
        where = f"runs.{name}"
        if base not in names:
            raise fail(where, f"is named as seed {seed} of run {base!r}, which does not exist")
        cfg, base_cfg = run_config(params, name, profile), run_config(params, base, profile)
        if cfg.training.seed != seed:
            raise fail(f"{where}.seed", f"expected {seed} (the seed its name gives), got {cfg.training.seed}")

        def _without_seed(c: RunConfig) -> dict:
            d = c.to_dict()
            d.pop("name")
            d["training"].pop("seed")
            return d

        if _without_seed(cfg) != _without_seed(base_cfg):
            raise fail(where, f"differs from {base!r} in more than the seed; a seed run must repeat its base run")
        groups.setdefault(base, [base]).append(name)
    for base, members in groups.items():
        seeds = [run_config(params, m, profile).training.seed for m in members]
        if len(set(seeds)) != len(seeds):
            raise fail(f"runs.{base}", f"its seed runs repeat a seed: {seeds}")
        members.sort(key=lambda m: run_config(params, m, profile).training.seed)
    return groups


def run_config(params: dict, name: str, profile: str | None = None) -> RunConfig:
    runs = as_mapping(require(params, "runs", ""), "runs")
    if name not in runs:
        raise ParamsError(f"params.yaml: runs.{name}: no such run (have: {', '.join(runs)})")
    where = f"runs.{name}"
    section = as_mapping(runs[name], where)
    check_known(section, {"corpus", "model", "training", "seed"}, where)
    profile = profile or profile_name(params)
    training_where = f"{where}.training"
    training = _train_config(params, as_mapping(require(section, "training", where), training_where), training_where)
    if "seed" in section:  # run-level seed: a repeat of a run (``<base>-seed<N>``) overrides only this
        training = replace(training, seed=_seed(section["seed"], f"{where}.seed"))
    run_budget = budget(params, profile)
    _check_budget_fills_a_window(run_budget, training, f"profiles.{profile}", name)
    return RunConfig(
        name=name,
        corpus=choice(require(section, "corpus", where), tuple(sorted(CORPUS_NAMES)), f"{where}.corpus"),
        profile=profile,
        model=_model_config(params, as_mapping(require(section, "model", where), f"{where}.model"), f"{where}.model"),
        training=training,
        budget=run_budget,
    )


def _check_budget_fills_a_window(run_budget: Budget, training: TrainConfig, where: str, run: str) -> None:
    """A token cap below one window (batch_size streams of bptt + 1 tokens) leaves nothing to train on."""
    window = training.batch_size * (training.bptt + 1)
    for cap in ("max_train_tokens", "max_eval_tokens"):
        tokens = getattr(run_budget, cap)
        if tokens is not None and tokens < window:
            raise fail(
                f"{where}.{cap}",
                f"{tokens} tokens cannot fill one window of run {run} "
                f"({training.batch_size} streams x {training.bptt + 1} tokens = {window}); raise it to "
                f"at least {window} or set it to null",
            )


def validate(params: dict) -> None:
    """Parse every section, so that a bad value anywhere is reported before work starts."""
    check_top_level(params)
    profile_name(params)
    for p in PROFILES:
        budget(params, p)
    corpora = data_settings(params).corpora
    device_setting(params)
    for name in run_names(params):
        corpus = {run_config(params, name, profile).corpus for profile in PROFILES}.pop()  # every profile's caps
        if corpus not in corpora:
            raise fail(
                f"runs.{name}.corpus",
                f"{corpus} is not in data.corpora ({', '.join(corpora)}), so "
                "nothing downloads or prepares it; add it there",
            )
    seed_groups(params)
