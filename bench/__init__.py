"""Benchmarks: each starts its own private services and processes, prints its figures and the ratio
against a baseline measured in the same run. They are measurements, not tests (see docs/BENCHMARKS.md).
"""
