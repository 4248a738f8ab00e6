"""Benchmarks anyone can rerun: see benchmarks/README.md."""
