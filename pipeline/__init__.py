"""scrn-repro: the importable library behind the DVC stages (data, models, training, reporting)."""
