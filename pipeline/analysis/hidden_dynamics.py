"""Figure 2 of the paper (Section 6.2): how much the top layer's hidden state moves per word.

For a model read over a token stream one word at a time, the change at step t is
``||h_t - h_{t-1}||_1`` of the top layer's h (the LSTM's h, not its cell c; the SCRN's h, not
its context s), attributed to the word w_t just read. The first step's change is measured from
the zero initial state (and so left out of the averages). The paper shows these over example
sentences; we add the number the figure only suggests: the mean change at the 100 most frequent
word types against the rest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pipeline.config import ModelConfig
from pipeline.models import build_model

TOP_TYPES = 100


def load_trained(model_dir: Path) -> torch.nn.Module:
    """The best-valid model saved by a training run (results/<profile>/<run>/model/model.pt)."""
    saved = torch.load(Path(model_dir) / "model.pt", map_location="cpu", weights_only=False)
    model = build_model(ModelConfig.from_dict(saved["config"]["model"]), saved["vocab_size"])
    model.load_state_dict(saved["state_dict"])
    return model.eval()


@torch.no_grad()
def top_hidden_states(model: torch.nn.Module, ids: np.ndarray, window: int = 35) -> torch.Tensor:
    """The top layer's h after each token of ``ids`` ([N] -> [N, d_h]), one stream, state carried."""
    captured: list[torch.Tensor] = []
    top = model.layers[-1]
    hook = top.register_forward_hook(lambda module, args, out: captured.append(out[1] if len(out) == 3 else out[0]))
    try:
        stream = torch.as_tensor(np.asarray(ids, dtype=np.int64))[None, :]
        state = model.zero_state(1)
        for start in range(0, stream.shape[1], window):
            state = model(stream[:, start : start + window], state).state
    finally:
        hook.remove()
    return torch.cat(captured, dim=1)[0]


def l1_deltas(h: torch.Tensor) -> np.ndarray:
    """||h_t - h_{t-1}||_1 for every t, with h_{-1} = 0 (the zero initial state)."""
    previous = torch.cat([torch.zeros_like(h[:1]), h[:-1]], dim=0)
    return (h - previous).abs().sum(dim=1).double().numpy()


def span_deltas(model: torch.nn.Module, ids: np.ndarray, start: int, end: int, context: int = 70) -> np.ndarray:
    """The changes at tokens start..end-1, after reading up to ``context`` preceding tokens
    (so that a sentence is seen as it is in running text, not from the zero state)."""
    first = max(0, start - context)
    return l1_deltas(top_hidden_states(model, ids[first:end]))[start - first :]


@dataclass(frozen=True)
class FrequencySplit:
    top_mean: float  # mean change when reading one of the most frequent types
    rest_mean: float
    top_tokens: int
    rest_tokens: int

    @property
    def ratio(self) -> float:
        return self.rest_mean / self.top_mean


def frequency_split(ids: np.ndarray, deltas: np.ndarray, train_ids: np.ndarray, top: int = TOP_TYPES) -> FrequencySplit:
    """Mean change at the ``top`` most frequent training types against all other tokens.

    The first token is left out: its change is measured from the zero initial state, not caused by
    reading a word in context, and is one to two orders of magnitude above the others.
    """
    ids, deltas = ids[1:], deltas[1:]
    counts = np.bincount(train_ids, minlength=int(max(train_ids.max(), ids.max())) + 1)
    frequent = np.zeros(len(counts), dtype=bool)
    frequent[np.argsort(-counts, kind="stable")[:top]] = True
    is_top = frequent[ids]
    return FrequencySplit(
        float(deltas[is_top].mean()), float(deltas[~is_top].mean()), int(is_top.sum()), int((~is_top).sum())
    )


def example_sentences(
    ids: np.ndarray,
    vocab: list[str],
    must_contain: str = "government",
    count: int = 3,
    min_len: int = 8,
    max_len: int = 18,
) -> list[tuple[int, int]]:
    """(start, end) token spans of ``count`` test sentences of readable length, the first one
    holding ``must_contain``; sentences end at ``<eos>``."""
    eos = vocab.index("<eos>")
    ends = np.flatnonzero(ids == eos)
    starts = np.concatenate([[0], ends[:-1] + 1])
    spans = [(int(s), int(e)) for s, e in zip(starts, ends) if min_len <= e - s <= max_len]
    target = vocab.index(must_contain) if must_contain in vocab else -1
    with_word = [sp for sp in spans if target in ids[sp[0] : sp[1]]]
    chosen = with_word[:1] + [sp for sp in spans if sp not in with_word[:1]][: count - len(with_word[:1])]
    return chosen


FIGURE2_RUNS = {"ptb-small-lstm-nd-kim": "LSTM + ND", "ptb-small-scrn-nd-wt": "SCRN + ND + WT"}


def trained_with(model_dir: Path) -> dict | None:
    """How the model was trained, from the metrics.json of its run beside ``model_dir``: the
    precision, the test PPL and the commit, so that a record names the model it came from."""
    path = Path(model_dir).parent / "metrics.json"
    if not path.is_file():
        return None
    metrics = json.loads(path.read_text())
    return {
        "precision": (metrics.get("numerics") or {}).get("precision", "fp32"),
        "test_ppl": metrics.get("test_ppl"),
        "git_rev": metrics.get("git_rev"),
        "device_name": (metrics.get("provenance") or {}).get("device_name"),
    }


def model_record(run: str, model_dir: Path, prepared_dir: Path, max_tokens: int | None = None) -> dict:
    """Everything Figure 2 needs from one trained model, as JSON: the frequent/other split over the
    test set (capped at ``max_tokens``) and the per-word changes over the example sentences. Written
    while the weights exist, so that the figure can be drawn after they are gone."""
    from pipeline.data.prepare import load_prepared

    vocab, arrays = load_prepared(prepared_dir)
    test = arrays["test"][:max_tokens] if max_tokens else arrays["test"]
    model = load_trained(model_dir)
    split = frequency_split(test, l1_deltas(top_hidden_states(model, test)), arrays["train"])
    spans = example_sentences(arrays["test"], vocab)

    def number(x: float) -> float | None:  # an empty group's mean is NaN, which JSON cannot hold
        return x if np.isfinite(x) else None

    return {
        "run": run,
        "model": FIGURE2_RUNS.get(run, run),
        "trained": trained_with(model_dir),
        "tokens": int(len(test)),
        "top_types": TOP_TYPES,
        "top_mean": number(split.top_mean),
        "rest_mean": number(split.rest_mean),
        "top_tokens": split.top_tokens,
        "rest_tokens": split.rest_tokens,
        "ratio": number(split.ratio),
        "sentences": [
            {
                "words": [vocab[i] for i in arrays["test"][s:e]],
                "deltas": span_deltas(model, arrays["test"], s, e).tolist(),
            }
            for s, e in spans
        ],
    }
