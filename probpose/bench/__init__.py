"""Benchmarks: the ``probpose bench`` runner (above training and evaluation), and the one timing
helper, machine description and Markdown table writer that every script in ``benchmarks/`` uses."""

from probpose.bench.machine import machine_description, set_threads
from probpose.bench.runner import COLUMNS, BenchRow, bench_models, format_table, write_bench
from probpose.bench.timing import median_seconds, per_second
from probpose.reports import Column, markdown_table, write_results

__all__ = [
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
