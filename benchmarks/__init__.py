"""Benchmarks and demos for tabnas (not part of the installed package)."""
