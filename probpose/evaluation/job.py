"""One evaluation job: a trained model scored on stores (a split, or all) and raw pose files, the
results written as ``evaluation.md`` and ``evaluation.json`` (together or not at all) with a
per-joint NLL chart where the prior factorises over joints. ``probpose evaluate`` builds an
:class:`EvaluateRequest` from its flags and prints the :class:`EvaluationRun`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from probpose.errors import DataError
from probpose.evaluation.report import EvaluationReport, evaluate_files, evaluate_store
from probpose.files import atomic_paths, check_output_path, destination, json_text
from probpose.machine import machine_description
from probpose.models import PoseModel, load_model, resolve_model_path
from probpose.options import MAX_COUNT, option, validate
from probpose.plots import bar_chart
from probpose.reports import Column, markdown_table

__all__ = ["EvaluateRequest", "EvaluationRun", "run_evaluation"]


@dataclass
class EvaluateRequest:
    """What to score and where to write it.

    Attributes:
        model: a checkpoint, or a shipped prior's name (``cmu/joint_flow``).
        data: HDF5 stores (``.h5``) and raw pose files (every frame).
        split: the stores' split to score; ``all``: each, then together.
        worst: how many worst-scored poses to list.
        assume_fps: frame rate of raw files that state none (it only labels frames).
        out: folder for ``evaluation.md``, ``evaluation.json`` and the charts.
    """

    model: Path
    data: list[Path]
    split: Literal["train", "val", "test", "all"] = "test"
    worst: int = option(10, ge=0, le=MAX_COUNT)
    assume_fps: float | None = option(None, gt=0)
    out: Path = Path("eval_results")

    def __post_init__(self) -> None:
        resolve_model_path(self.model)  # an empty or NUL-bearing name: one line, not "'.' is a folder"
        self.model = Path(self.model)
        self.data, self.out = [Path(p) for p in self.data], Path(self.out)
        validate(self)
        if not self.data:
            raise DataError("evaluate", "data", "give at least one store or pose file")


@dataclass
class EvaluationRun:
    """A finished evaluation: the model, a report per data set (split or files), the Markdown
    table and the files written (``charts``: per-joint NLL, one per report that has it)."""

    model: PoseModel
    reports: list[EvaluationReport]
    table: str
    markdown: Path
    json: Path
    charts: list[tuple[Path, EvaluationReport]] = field(default_factory=list)


def run_evaluation(request: EvaluateRequest) -> EvaluationRun:
    """Score ``request.model`` on every store and on the raw files together: NLL in nats/pose (an
    upper bound for VAEs), BPD, NLL vs Haar, N and D; per-joint NLL for priors that factorise over
    joints; the worst-scored poses. Every output is checked against the inputs before scoring."""
    r = request
    out = destination(r.out)
    if out.exists() and not out.is_dir():
        raise DataError(str(r.out), None, "is a file; give a folder for evaluation.md and evaluation.json")
    inputs = [*r.data, resolve_model_path(r.model)]
    most = (4 if r.split == "all" else 1) * len(r.data) + 1  # reports: per split and joined, files together
    charts = [f"per_joint_nll_{k + 1}.png" for k in range(most)]
    for name in ("evaluation.md", "evaluation.json", "per_joint_nll.png", *charts):
        check_output_path(r.out / name, inputs, "evaluation")  # before any scoring
    stores = [p for p in r.data if p.suffix.lower() in (".h5", ".hdf5")]
    files = [p for p in r.data if p not in stores]
    model = load_model(r.model)
    model.eval()
    reports = [rep for p in stores for rep in evaluate_store(model, p, r.split, r.worst)]
    if files:
        reports.append(evaluate_files(model, files, r.worst, r.assume_fps))
    rows = [{"data": rep.data, **rep.evaluation.to_dict()} for rep in reports]
    bound = "" if model.exact_log_prob else " (upper bound)"
    table = markdown_table([
        Column("data", "data"),
        Column("n", "N"),
        Column("dim", "D"),
        Column("nll", f"NLL (nats/pose){bound}", "{:.3f}"),
        Column("bpd", "BPD", "{:.4f}"),
        Column("nll_haar", "NLL vs Haar", "{:.3f}"),
    ], rows)  # fmt: skip
    lines = [
        "# probpose evaluate",
        "",
        f"Model `{r.model}` ({model.registry_name}), joints {model.skeleton.selection!r}: "
        f"{', '.join(model.modelled_names)}.",
        "",
        table,
        "",
    ]
    for rep in reports:
        if rep.per_joint_nll:
            lines += [f"NLL per joint on {rep.data} (nats/pose, worst first): {per_joint_text(rep)}", ""]
        lines += [f"Worst poses on {rep.data} (index: NLL): {worst_text(rep)}", ""]
    r.out.mkdir(parents=True, exist_ok=True)
    payload = {
        "model": str(r.model),
        "registry_name": model.registry_name,
        "joints": model.modelled_names,
        "reports": [rep.to_dict() for rep in reports],
        "machine": machine_description("cpu"),
    }
    md, js = r.out / "evaluation.md", r.out / "evaluation.json"
    with atomic_paths(js, md) as (tmp_json, tmp_md):
        tmp_json.write_text(json_text(payload))
        tmp_md.write_text("\n".join(lines))  # the pair appears together or not at all
    run = EvaluationRun(model, reports, table, md, js)
    factorised = [rep for rep in reports if rep.per_joint_nll]
    for k, rep in enumerate(factorised):
        name = "per_joint_nll.png" if len(factorised) == 1 else f"per_joint_nll_{k + 1}.png"
        values = rep.per_joint_nll or {}
        title = f"{model.registry_name} on {rep.data}: NLL per joint"
        bar_chart(list(values), list(values.values()), r.out / name, "NLL (nats/pose)", title)
        run.charts.append((r.out / name, rep))
    return run


def per_joint_text(report: EvaluationReport) -> str:
    """``"joint nll, ..."``, worst first (nats/pose)."""
    ranked = sorted((report.per_joint_nll or {}).items(), key=lambda kv: -kv[1])
    return ", ".join(f"{k} {v:.2f}" for k, v in ranked)


def worst_text(report: EvaluationReport) -> str:
    """``"#index (nll), ..."`` of the worst-scored poses."""
    return ", ".join(f"#{i} ({v:.1f})" for i, v in report.worst)
