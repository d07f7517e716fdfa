"""The evaluation report: PNG plots, a self-contained HTML page (plots embedded) and a JSON of every number."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import metrics
from .evaluate import IdentificationRun, VerificationRun

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def write_report(run: VerificationRun | IdentificationRun, out: Path) -> dict[str, Path]:
    """Write ``report.json``, the PNG plots and ``report.html`` into ``out``; returns what was written."""
    out.mkdir(parents=True, exist_ok=True)
    plots = _verification_plots(run) if isinstance(run, VerificationRun) else _identification_plots(run)
    files = {}
    for name, figure in plots.items():
        files[name] = out / f"{name}.png"
        figure.savefig(files[name], dpi=110, bbox_inches="tight")
    files["json"] = out / "report.json"
    files["json"].write_text(json.dumps(run.summary, indent=2) + "\n")
    files["html"] = out / "report.html"
    files["html"].write_text(_html(run.summary, {n: files[n] for n in plots}))
    return files


def _new_plot() -> tuple[Figure, Axes]:
    """A figure with one plot, drawn off-screen (no pyplot, no GUI toolkit); matplotlib is imported here, on
    first use, because it costs ~0.3 s and only reports need it."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.5, 4.2))
    return figure, figure.subplots()


def _verification_plots(run: VerificationRun) -> dict[str, Figure]:
    scores, same = run.scores, run.pairs.same
    curve = metrics.roc(scores, same)
    # Log axes cannot show a rate of 0: it is drawn at half the smallest measurable rate.
    fmr_floor, fnmr_floor = 0.5 / max(int((~same).sum()), 1), 0.5 / max(int(same.sum()), 1)
    fmr = np.maximum(curve.fmr, fmr_floor)
    threshold = run.summary["operating_point"]["threshold"]
    return {
        "roc": _roc_plot(fmr, curve.tar, fmr_floor),
        "det": _det_plot(fmr, np.maximum(curve.fnmr, fnmr_floor), fmr_floor, fnmr_floor),
        "scores": _histogram(scores, same, threshold),
    }


def _roc_plot(fmr: np.ndarray, tar: np.ndarray, fmr_floor: float) -> Figure:
    figure, axes = _new_plot()
    axes.plot(fmr, tar, drawstyle="steps-post")
    axes.set(xscale="log", xlim=(fmr_floor, 1), xlabel="false match rate (FMR)", ylabel="true accept rate (TAR)")
    axes.set_title(f"ROC (FMR 0 drawn at {fmr_floor:.1g})")
    axes.grid(True, which="both", alpha=0.3)
    return figure


def _det_plot(fmr: np.ndarray, fnmr: np.ndarray, fmr_floor: float, fnmr_floor: float) -> Figure:
    figure, axes = _new_plot()
    axes.plot(fmr, fnmr, drawstyle="steps-post")
    axes.set(xscale="log", yscale="log", xlim=(fmr_floor, 1), ylim=(fnmr_floor, 1))
    axes.set(xlabel="false match rate (FMR)", ylabel="false non-match rate (FNMR)")
    axes.set_title("DET, log axes (rates of 0 drawn at the axis floor)")
    axes.grid(True, which="both", alpha=0.3)
    return figure


def _histogram(scores: np.ndarray, same: np.ndarray, threshold: float) -> Figure:
    figure, axes = _new_plot()
    finite = np.isfinite(scores)
    bins = np.linspace(scores[finite].min(), scores[finite].max(), 60).tolist()
    axes.hist(scores[finite & same], bins=bins, alpha=0.6, label="genuine (same person)", density=True)
    axes.hist(scores[finite & ~same], bins=bins, alpha=0.6, label="impostor", density=True)
    axes.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.3f}")
    axes.set(xlabel="cosine similarity", ylabel="density", title="Score distributions")
    axes.legend()
    return figure


def _identification_plots(run: IdentificationRun) -> dict[str, Figure]:
    det = run.summary["det"]
    return {"cmc": _cmc_plot(run), **({"det": _identification_det_plot(run.summary)} if det["fpir"] else {})}


def _identification_det_plot(summary: dict[str, Any]) -> Figure:
    """FNIR against FPIR (log axes), with the points the FPIR rule decided at."""
    det, non_mated, mated = summary["det"], summary["probes"]["non_mated"], summary["probes"]["mated"]
    fpir_floor, fnir_floor = 0.5 / max(non_mated, 1), 0.5 / max(mated, 1)
    figure, axes = _new_plot()
    fpir, fnir = np.maximum(det["fpir"], fpir_floor), np.maximum(det["fnir"], fnir_floor)
    axes.plot(fpir, fnir, drawstyle="steps-post", label="this gallery")
    for row in summary["fpir_rule"]:
        if row["threshold"] is not None and row.get("measured_fpir") is not None:
            point = max(row["measured_fpir"], fpir_floor), max(row["fnir"], fnir_floor)
            axes.plot(*point, marker="o", linestyle="none", label=f"rule at FPIR {row['fpir']:g}")
    axes.set(xscale="log", yscale="log", xlim=(fpir_floor, 1), ylim=(fnir_floor, 1))
    axes.set(xlabel="false positive identification rate (FPIR)", ylabel="false negative identification rate (FNIR)")
    axes.set_title("Identification DET, log axes (rates of 0 drawn at the axis floor)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize="small")
    return figure


def _cmc_plot(run: IdentificationRun) -> Figure:
    figure, axes = _new_plot()
    ranks = np.arange(1, len(run.cmc) + 1)
    axes.plot(ranks, run.cmc, marker="o")
    axes.set(xlabel="rank", ylabel="identification rate", title="CMC (closed set, mated probes)")
    axes.grid(True, alpha=0.3)
    return figure


def _html(summary: dict[str, Any], plots: dict[str, Path]) -> str:
    images = "".join(
        f'<figure><img alt="{name}" src="data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()}">'
        f"<figcaption>{name}</figcaption></figure>"
        for name, path in plots.items()
    )
    title = f"faceprint {summary['kind']} report"
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title><style>"
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}figure{display:inline-block;margin:0}"
        f"</style></head><body><h1>{title}</h1><p>{html.escape(str(summary['source']))}</p>"
        f"{''.join(_section(k, v) for k, v in summary.items() if k not in ('kind', 'source'))}{images}</body></html>\n"
    )


def _section(name: str, value: Any) -> str:
    return f"<h2>{html.escape(name)}</h2>{_table(value)}"


def _table(value: Any) -> str:
    """Nested dicts and lists of dicts as HTML tables; scalars as text."""
    if isinstance(value, dict):
        rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{_table(v)}</td></tr>" for k, v in value.items())
        return f"<table>{rows}</table>"
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        keys = list(dict.fromkeys(k for v in value for k in v))
        head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)
        body = "".join("<tr>" + "".join(f"<td>{_table(v.get(k, ''))}</td>" for k in keys) + "</tr>" for v in value)
        return f"<table><tr>{head}</tr>{body}</table>"
    if isinstance(value, list):
        return html.escape(", ".join(_text(v) for v in value))
    return html.escape(_text(value))


def _text(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
