"""Analyses of trained models (the paper's Section 6.2 hidden-state dynamics)."""
