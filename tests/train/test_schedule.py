"""pipeline/train/schedule.py: the `after` and `plateau` LR rules and the LR floor, without a model.

The trainer's own LR tests (tests/train/test_train.py) run them through a training run; these pin each
rule alone, so that deleting or swapping either one fails here by name."""

from __future__ import annotations

import math

import pytest

from pipeline.config import TrainConfig
from pipeline.train.schedule import LRSchedule


def training(**overrides) -> TrainConfig:
    settings = {
        "batch_size": 20,
        "bptt": 35,
        "lr": 0.8,
        "lr_decay": 0.5,
        "lr_schedule": "plateau",
        "decay_after": None,
        "plateau_threshold": 0.0,
        "clip_norm": 5.0,
        "init_scale": 0.1,
        "epochs": 10,
        "seed": 1,
    }
    return TrainConfig(**{**settings, **overrides})


def run_lrs(schedule: LRSchedule, valid_ppls: list[float]) -> tuple[list[float], float]:
    """The LR of each epoch and the final LR, applying the schedule's hooks the way the trainer does."""
    lr, best, lrs = schedule.initial, math.inf, []
    for epoch, valid in enumerate(valid_ppls, start=1):
        lr = schedule.epoch_lr(epoch, lr)
        lrs.append(lr)
        lr = schedule.after_validation(lr, valid, best)
        best = min(best, valid)
    return lrs, lr


def test_the_after_rule_keeps_lr0_until_decay_after_then_decays_every_epoch():
    schedule = LRSchedule(training(lr_schedule="after", decay_after=2, lr=1.0))
    assert [schedule.epoch_lr(e, 123.0) for e in (1, 2, 3, 4)] == [1.0, 1.0, 0.5, 0.25]


def test_the_after_rule_sets_the_lr_from_the_epoch_alone_and_ignores_validation():
    """A resumed run gets its LR back from the epoch number; a plateau in valid PPL changes nothing."""
    schedule = LRSchedule(training(lr_schedule="after", decay_after=1, lr_decay=0.87))
    assert schedule.epoch_lr(3, 0.1) == 0.8 * 0.87**2
    assert schedule.after_validation(0.5, valid_ppl=60.0, best_before=50.0) == 0.5
    assert run_lrs(schedule, [50.0, 60.0, 70.0]) == ([0.8, 0.8 * 0.87, 0.8 * 0.87**2], 0.8 * 0.87**2)


def test_the_plateau_rule_decays_after_a_validation_that_is_not_a_new_best():
    schedule = LRSchedule(training())
    assert schedule.epoch_lr(7, 0.3) == 0.3  # no fixed decay: the LR the last validation left
    assert schedule.after_validation(0.8, valid_ppl=50.0, best_before=math.inf) == 0.8
    assert schedule.after_validation(0.8, valid_ppl=40.0, best_before=50.0) == 0.8
    assert schedule.after_validation(0.8, valid_ppl=50.0, best_before=50.0) == 0.4  # a tie is no improvement
    assert schedule.after_validation(0.8, valid_ppl=60.0, best_before=50.0) == 0.4
    assert run_lrs(schedule, [50.0, 40.0, 45.0, 39.0, 39.0]) == ([0.8, 0.8, 0.8, 0.4, 0.4], 0.2)


def test_the_plateau_threshold_requires_an_improvement_by_more_than_it():
    schedule = LRSchedule(training(plateau_threshold=1.0))
    assert schedule.after_validation(0.8, valid_ppl=49.5, best_before=50.0) == 0.4
    assert schedule.after_validation(0.8, valid_ppl=49.0, best_before=50.0) == 0.4  # by exactly 1: not more
    assert schedule.after_validation(0.8, valid_ppl=48.5, best_before=50.0) == 0.8
    assert run_lrs(schedule, [50.0, 49.5, 48.0, 46.5]) == ([0.8, 0.8, 0.4, 0.4], 0.4)


@pytest.mark.parametrize("rule", [{"lr_schedule": "plateau"}, {"lr_schedule": "after", "decay_after": 0}])
def test_the_floor_is_a_fraction_of_lr0_and_an_lr_at_it_is_not_below_it(rule):
    schedule = LRSchedule(training(**rule), floor=0.25)
    assert schedule.below_floor(0.19) and not schedule.below_floor(0.2) and not schedule.below_floor(0.8)
    assert not LRSchedule(training(**rule)).below_floor(1e-30)  # no floor: never below it


def test_the_floor_is_crossed_by_each_rule_at_its_own_epoch():
    """The trainer asks for the next epoch's LR after a validation: under `after` it is known from
    the epoch, under `plateau` from the decay the validation just applied."""
    after = LRSchedule(training(lr_schedule="after", decay_after=2), floor=0.3)
    assert [after.below_floor(after.epoch_lr(e, 0.8)) for e in (2, 3, 4)] == [False, False, True]
    plateau = LRSchedule(training(), floor=0.3)
    _, lr = run_lrs(plateau, [50.0, 60.0])
    assert lr == 0.4 and not plateau.below_floor(plateau.epoch_lr(3, lr))
    _, lr = run_lrs(plateau, [50.0, 60.0, 70.0])
    assert lr == 0.2 and plateau.below_floor(plateau.epoch_lr(4, lr))
