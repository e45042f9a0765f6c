"""Benchmarks: the ``probpose bench`` job (:func:`run_bench`, above training and evaluation) with
its per-model budgets, and the one timing helper, machine description and Markdown table writer
that every script in ``benchmarks/`` uses."""

from probpose.bench.budgets import BUDGETS, bench_budget
from probpose.bench.job import BenchRequest, BenchRun, run_bench
from probpose.bench.runner import COLUMNS, BenchRow, bench_models, format_table, write_bench
from probpose.bench.timing import median_seconds, per_second
from probpose.machine import machine_description, set_threads
from probpose.reports import Column, markdown_table, write_results

__all__ = [
    "BUDGETS",
    "bench_budget",
    "BenchRequest",
    "BenchRun",
    "run_bench",
    "machine_description",
    "set_threads",
    "Column",
    "markdown_table",
    "write_results",
    "COLUMNS",
    "BenchRow",
    "bench_models",
    "format_table",
    "write_bench",
    "median_seconds",
    "per_second",
]
