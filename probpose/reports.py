"""The one Markdown table writer of probpose, and result files (Markdown + JSON, with the machine):
used by the bench, `probpose evaluate` and the benchmark scripts."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from probpose.files import atomic_paths, json_text

__all__ = ["Column", "markdown_table", "write_results"]


@dataclass(frozen=True)
class Column:
    """A table column: the row key, the title, and a format (a ``str.format`` pattern or a
    function of the row). Missing or ``None`` values print as ``-``."""

    key: str
    title: str
    fmt: str | Callable[[Mapping[str, Any]], str] = "{}"

    def cell(self, row: Mapping[str, Any]) -> str:
        if callable(self.fmt):
            return self.fmt(row)
        value = row.get(self.key)
        return "-" if value is None else self.fmt.format(value)


def markdown_table(columns: Sequence[Column], rows: Sequence[Mapping[str, Any]]) -> str:
    """A Markdown table: one header row, one row per mapping."""
    head = "| " + " | ".join(c.title for c in columns) + " |"
    sep = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(c.cell(r) for c in columns) + " |" for r in rows]
    return "\n".join([head, sep, *body])


def write_results(
    out_dir: str | Path, stem: str, title: str, intro: str, table: str, payload: Mapping[str, Any], machine: dict
) -> tuple[Path, Path]:
    """Write ``STEM.md`` (title, intro, table, machine) and ``STEM.json`` (payload and machine)
    to ``out_dir``, together (both or neither). Returns both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md, js = out / f"{stem}.md", out / f"{stem}.json"
    described = "Machine: " + ", ".join(f"{k} {v}" for k, v in machine.items())
    text = "\n".join([f"# {title}", "", intro, "", table, "", described, ""])
    with atomic_paths(md, js) as (tmp_md, tmp_js):  # the pair appears together or not at all
        tmp_md.write_text(text)
        tmp_js.write_text(json_text({**payload, "machine": machine}))
    return md, js
