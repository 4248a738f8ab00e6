"""A run's learning-rate schedule: both decay rules of params.yaml and the optional LR floor.

``lr_schedule: after`` (the variational-dropout presets) sets the LR of 1-based epoch ``e`` before
it trains: lr0 x decay^max(0, e - decay_after). ``lr_schedule: plateau`` (the authors' scripts,
Kim et al.'s with a threshold) multiplies the LR by the decay after a validation that did not beat
the best valid PPL so far by more than ``plateau_threshold``. A run applies both hooks every epoch;
each is a no-op under the other rule, so the trainer never branches on the rule's name.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.config import TrainConfig


@dataclass(frozen=True)
class LRSchedule:
    """The LR rules of ``training`` and the floor ``floor`` x lr0 (None: no floor).

    The LR is passed in and returned rather than held here: it is part of the run's checkpointed
    state (``RunState.lr``), so a resumed run continues from the LR its checkpoint recorded.
    """

    training: TrainConfig
    floor: float | None = None  # Numerics.lr_floor: a fraction of the initial LR

    @property
    def initial(self) -> float:
        return self.training.lr

    def epoch_lr(self, epoch: int, current: float) -> float:
        """The LR to train 1-based ``epoch`` with, given the LR the previous epoch left."""
        t = self.training
        if t.lr_schedule == "after":
            return t.lr * t.lr_decay ** max(0, epoch - t.decay_after)
        return current

    def after_validation(self, current: float, valid_ppl: float, best_before: float) -> float:
        """The LR after an epoch whose valid PPL is ``valid_ppl``; ``best_before`` is the best valid
        PPL of the epochs before it (inf before the first)."""
        t = self.training
        if t.lr_schedule == "plateau" and not valid_ppl < best_before - t.plateau_threshold:
            return current * t.lr_decay  # decay unless valid PPL beat the best so far (by more than the threshold)
        return current

    def below_floor(self, lr: float) -> bool:
        """Whether ``lr`` is below the floor, where a run with a floor stops (never without one)."""
        return self.floor is not None and lr < self.floor * self.training.lr
