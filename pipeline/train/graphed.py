"""The whole training step (forward, loss, backward, clipping, SGD) as one CUDA graph replay.

On a GPU the step of a PTB-sized model is launch-bound: hundreds of small kernels, each
launched from Python. Every training window has the same shape (the batching drops the tail,
pipeline/data/batching.py), so the step is captured once per run and replayed per window
(PyTorch's "whole-network capture"): x, y and the carried state live in static buffers, and
the step itself copies the new state into the state buffers at its end.

The step is the eager trainer's (pipeline/train/step.py: ``window_loss`` and ``sgd_update``),
which makes no host sync:

- clipping is the same ``torch.nn.utils.clip_grad_norm_`` call (its total norm and scale
  ``min(1, max_norm / (norm + 1e-6))`` stay on the device, every gradient is multiplied);
- the learning rate is a device tensor, set with :meth:`GraphedStep.set_lr` between epochs;
- gradients are created by the backward (``.grad`` is None before it, so the captured
  backward writes, not accumulates, them on every replay);
- the NaN guard counts windows and records the first one with a non-finite loss on the
  device; :meth:`GraphedStep.end_epoch` reads it once per epoch (one sync) and the trainer
  raises ``TrainingDiverged`` naming that step, as the eager guard does.

Dropout draws inside a graph come from the CUDA generator's graph-safe state, which advances
on every replay: masks differ from window to window, but not bit for bit from eager ones.

``capture=False`` runs the same static-buffer step eagerly (any device), which is what the CPU
tests compare with the eager trainer.
"""

from __future__ import annotations

import torch

from pipeline.models.common import detach_state
from pipeline.train.step import sgd_update, trainable_parameters, window_loss


def flatten_state(state) -> list[torch.Tensor]:
    """The tensors of a (nested tuple) model state, in order."""
    if isinstance(state, torch.Tensor):
        return [state]
    return [t for s in state for t in flatten_state(s)]


def unflatten_state(like, flat: list[torch.Tensor]):
    """The inverse of :func:`flatten_state`: ``flat`` in the nesting of ``like``."""
    it = iter(flat)

    def build(s):
        return next(it) if isinstance(s, torch.Tensor) else tuple(build(x) for x in s)

    return build(like)


class GraphedStep:
    """Static buffers and the training step on them; ``capture`` records it as a CUDA graph."""

    def __init__(
        self,
        model: torch.nn.Module,
        batch: int,
        bptt: int,
        device,
        clip: float,
        capture: bool,
        warmup: int = 2,
        loss_fn=None,
    ):
        self.model, self.clip, self.device = model, float(clip), torch.device(device)
        self.loss_fn = loss_fn or window_loss
        self.params = trainable_parameters(model)
        dtype = self.params[0].dtype
        self.x = torch.zeros(batch, bptt, dtype=torch.long, device=device)
        self.y = torch.zeros(batch, bptt, dtype=torch.long, device=device)
        self._state_like = model.zero_state(batch, device=device)
        self.state = flatten_state(self._state_like)  # the carried state, read and rewritten by the step
        self.lr = torch.zeros((), dtype=dtype, device=device)
        self.total = torch.zeros((), dtype=torch.float64, device=device)  # sum of mean_ce over the epoch
        self.count = torch.zeros((), dtype=torch.long, device=device)  # windows this epoch
        self.bad_step = torch.zeros((), dtype=torch.long, device=device)  # first non-finite window (1-based), 0 = none
        self.bad_loss = torch.zeros((), dtype=torch.float64, device=device)
        self.graph = None
        if capture:
            self._capture(warmup)

    # ------------------------------------------------------------------ the step

    def _step(self) -> None:
        """One window on the static buffers; no host syncs (it is what the graph records)."""
        state = unflatten_state(self._state_like, self.state)
        loss, mean_ce, new_state = self.loss_fn(self.model, self.x, self.y, state)
        sgd_update(self.params, loss, self.lr, self.clip)
        with torch.no_grad():
            loss = loss.detach()
            self.total.add_(mean_ce.detach().double())
            self.count.add_(1)
            first = (self.bad_step == 0) & ~torch.isfinite(loss)
            self.bad_step.copy_(torch.where(first, self.count, self.bad_step))
            self.bad_loss.copy_(torch.where(first, loss.double(), self.bad_loss))
            for buf, new in zip(self.state, flatten_state(detach_state(new_state))):
                buf.copy_(new)

    def _capture(self, warmup: int) -> None:
        """Warm up on a side stream (allocator, cuDNN plans), restore everything, capture."""
        saved = [p.detach().clone() for p in self.params]
        devices = [self.device.index if self.device.index is not None else torch.cuda.current_device()]
        with torch.random.fork_rng(devices=devices):
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                for _ in range(warmup):
                    self._step()
            torch.cuda.current_stream(self.device).wait_stream(side)
            with torch.no_grad():
                for p, v in zip(self.params, saved):
                    p.copy_(v)
            for p in self.params:
                p.grad = None
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self._step()
        self.start_epoch()

    # ------------------------------------------------------------------ per epoch / per window

    def set_lr(self, lr: float) -> None:
        self.lr.fill_(lr)

    def start_epoch(self) -> None:
        """Zero state (as at the start of every pass) and the epoch's counters."""
        for t in self.state + [self.total, self.count, self.bad_step, self.bad_loss]:
            t.zero_()

    def step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x.copy_(x, non_blocking=True)
        self.y.copy_(y, non_blocking=True)
        if self.graph is not None:
            self.graph.replay()
        else:
            self._step()

    def carried_state(self):
        """The state after the last window, as the model's nested tuples (copies)."""
        return unflatten_state(self._state_like, [t.clone() for t in self.state])

    def end_epoch(self) -> tuple[float, int, float]:
        """(sum of the windows' mean cross-entropy, first non-finite step or 0, its loss); one sync."""
        values = torch.stack([self.total, self.bad_step.double(), self.bad_loss]).tolist()
        return values[0], int(values[1]), values[2]
