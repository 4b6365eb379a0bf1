"""Benchmarks, run by `make bench` (python -m e2e.bench)."""
