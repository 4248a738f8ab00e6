"""pipeline/train/step.py (the loss of a window and the SGD update, shared by the eager and the
graphed step) and the one divergence threshold that training and evaluation share."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pipeline.data.batching import make_layout
from pipeline.errors import TrainingDiverged
from pipeline.models.common import Features, LanguageModel, ModelOutput
from pipeline.train import loop, step
from pipeline.train.evaluate import MAX_LOG_PPL, evaluate_ppl


class ConstantLoss(torch.nn.Module):
    """Logits whose cross-entropy is ``ce`` for every token: the target's logit 0, one other ``ce``."""

    def __init__(self, ce: float, vocab: int = 3):
        super().__init__()
        self.ce, self.vocab = ce, vocab

    def zero_state(self, batch, device=None):
        return torch.zeros(batch, 1, dtype=torch.float64, device=device)

    def forward(self, x, state):
        logits = torch.zeros(*x.shape, self.vocab, dtype=torch.float64)
        logits[..., 0] = self.ce  # the data below never has token 0 as a target
        return ModelOutput(logits, state, None)


@pytest.mark.parametrize("ce", [695.0, 705.0])
def test_training_and_evaluation_agree_where_a_run_has_diverged(ce):
    """One threshold for both: a mean cross-entropy the trainer calls diverged evaluates to ∞,
    never to a finite perplexity beyond 1e300 (the two used to differ between log(1e300) and 709)."""
    assert ce > MAX_LOG_PPL
    layout = make_layout(np.array([1, 2] * 20), batch_size=2, bptt=5)
    assert evaluate_ppl(ConstantLoss(ce), layout, torch.device("cpu")) == math.inf
    with pytest.raises(TrainingDiverged, match="overflows at epoch 3"):
        loop._train_ppl(ce, 3)
    below = MAX_LOG_PPL - 1.0
    assert evaluate_ppl(ConstantLoss(below), layout, torch.device("cpu")) == pytest.approx(math.exp(below), rel=1e-9)
    assert loop._train_ppl(below, 3) == math.exp(below)


def test_the_trainer_and_the_graphed_step_use_the_step_module():
    from pipeline.train import graphed

    assert loop.window_loss is step.window_loss and loop.sgd_step is step.sgd_step
    assert graphed.window_loss is step.window_loss and graphed.sgd_update is step.sgd_update


def test_sgd_update_with_a_float_or_a_device_tensor_lr():
    """The eager trainer's float LR and the graphed step's tensor LR give the same update (up to the
    rounding of a fused multiply-add), gradients clipped to the global norm and then consumed."""
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(4, 3, dtype=torch.float64))
    b = torch.nn.Parameter(torch.randn(3, dtype=torch.float64))
    frozen = torch.nn.Parameter(torch.randn(3, dtype=torch.float64), requires_grad=False)
    x = torch.randn(5, 4, dtype=torch.float64)

    def updated(lr):
        params = [p.detach().clone().requires_grad_() for p in (w, b)]
        loss = ((x @ params[0] + params[1] + frozen) ** 2).sum()
        step.sgd_update(params, loss, lr, clip_norm=0.1)
        return params

    (w1, b1), (w2, b2) = updated(0.3), updated(torch.tensor(0.3, dtype=torch.float64))
    torch.testing.assert_close(w1, w2, rtol=1e-15, atol=1e-15)
    torch.testing.assert_close(b1, b2, rtol=1e-15, atol=1e-15)
    moved = torch.cat([(w1 - w).flatten(), b1 - b]).norm().item()
    assert moved == pytest.approx(0.3 * 0.1, rel=1e-6)  # clipped to norm 0.1, times the LR
    assert w1.grad is not None and frozen.grad is None  # the backward's fresh gradients


class LinearLM(LanguageModel):
    """An embedding and a linear softmax layer: the smallest model autocast changes."""

    def __init__(self, vocab: int = 7, dim: int = 4):
        super().__init__()
        torch.manual_seed(0)
        self.emb, self.out = torch.nn.Embedding(vocab, dim), torch.nn.Linear(dim, vocab)
        self.autocast_seen: list[bool] = []

    def zero_state(self, batch, device=None):
        return torch.zeros(batch, 1, device=device)

    def features(self, x, state):
        self.autocast_seen.append(torch.is_autocast_enabled("cpu"))
        return Features(self.emb(x), state, None)

    def output_layer(self):
        return self.out.weight, self.out.bias


@pytest.mark.parametrize("bf16", [False, True])
def test_window_loss_runs_the_forward_in_the_precision_asked_for(bf16):
    """bf16: the model's matmuls in bfloat16 under autocast, the loss still fp32 and near the fp32 one."""
    model = LinearLM()
    x, y = torch.randint(0, 7, (3, 5), generator=torch.Generator().manual_seed(1)), torch.randint(0, 7, (3, 5))
    loss, mean_ce, _ = step.window_loss(model, x, y, model.zero_state(3), bf16)
    fp32_loss, _, _ = step.window_loss(model, x, y, model.zero_state(3))
    assert model.autocast_seen == [bf16, False]
    assert loss.dtype == mean_ce.dtype == torch.float32
    assert loss.item() == pytest.approx(mean_ce.item() * 5, rel=1e-6)
    if bf16:
        assert loss.item() != fp32_loss.item() and loss.item() == pytest.approx(fp32_loss.item(), rel=2e-2)
    else:
        assert loss.item() == fp32_loss.item()


def test_the_trainer_epoch_trains_in_the_precision_asked_for():
    layout = make_layout(np.arange(61) % 7, batch_size=3, bptt=5)
    for bf16 in (False, True):
        model = LinearLM()
        loop._train_epoch(model, layout, torch.device("cpu"), 0.1, 5.0, 1, progress=False, bf16=bf16)
        assert model.autocast_seen == [bf16] * layout.num_windows
