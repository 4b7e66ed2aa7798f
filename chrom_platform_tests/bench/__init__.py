"""Benchmarks (`make bench`): each figure measured against a baseline in the same run; results in docs/benchmarks.md."""
