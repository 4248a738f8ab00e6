"""Truncated-BPTT training, evaluation and resumable checkpoints."""
