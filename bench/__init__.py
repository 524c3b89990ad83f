"""Benchmarks of the pathway engine (run `python bench/engine.py`)."""
