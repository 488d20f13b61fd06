"""Metric logging: one compact console line, metrics.jsonl and TensorBoard per logged step.

    logger = MetricLogger(run_dir)
    logger.log(3, {"rollout/success_rate": 0.25, "losses/loss": 0.01})
    plot_curve(run_dir / "metrics.jsonl", run_dir / "learning_curve.png")

Metric names: ``rollout/*`` (what the rollouts saw), ``losses/*`` (the update), ``charts/*``
(learning rate, grad norm, timings, throughput), ``eval/*`` (fixed-seed greedy evaluation).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable, Sequence

# What the console line shows, in order, with a short label.
CONSOLE_KEYS = (
    ("rollout/env_steps_total", "steps"), ("rollout/success_rate", "succ"), ("rollout/mean_return", "ret"),
    ("rollout/mean_turns", "turns"), ("losses/loss", "loss"), ("losses/approx_kl", "kl"),
    ("losses/clipfrac", "clip"), ("losses/value_loss", "vloss"), ("losses/nll", "nll"),
    ("eval/success_rate", "eval_succ"), ("rollout/dropped_episodes", "dropped"), ("charts/iter_time_s", "s"),
)


def _fmt(v: Any) -> str:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, int) or float(v).is_integer() and abs(v) >= 1:
        return f"{int(v)}"
    return f"{v:.3g}"


def format_line(step: int, metrics: dict[str, Any]) -> str:
    parts = [f"it {step}"]
    for key, label in CONSOLE_KEYS:
        if key in metrics and not (key == "rollout/dropped_episodes" and not metrics[key]):
            parts.append(f"{label} {_fmt(metrics[key])}")
    return " | ".join(parts)


def _number(v: Any) -> float | None:
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, (int, float)) and math.isfinite(v):
        return float(v)
    if hasattr(v, "item"):   # a 0-d tensor or numpy scalar
        return _number(v.item())
    return None


class MetricLogger:
    """Writes every ``log(step, metrics)`` to metrics.jsonl (one JSON object per line, with
    ``step``), TensorBoard scalars and, when ``console``, one short line through tqdm."""

    def __init__(self, run_dir: str | Path, tensorboard: bool = True, console: bool = True,
                 purge_step: int | None = None):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.run_dir / "metrics.jsonl"
        self.console = console
        self.writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter
            # purge_step drops events a killed run wrote after its last checkpoint.
            self.writer = SummaryWriter(str(self.run_dir / "tb"), purge_step=purge_step)

    def log(self, step: int, metrics: dict[str, Any]) -> dict[str, Any]:
        row = {"step": int(step)}
        for k, v in metrics.items():
            n = _number(v)
            row[k] = n if n is not None else (v if isinstance(v, (str, type(None))) else str(v))
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        if self.writer is not None:
            for k, v in row.items():
                if k != "step" and isinstance(v, float):
                    self.writer.add_scalar(k, v, int(step))
            self.writer.flush()
        if self.console:
            from tqdm.auto import tqdm
            tqdm.write(format_line(step, row))
        return row

    def rewrite(self, rows: Iterable[dict[str, Any]]) -> None:
        """Replace metrics.jsonl with ``rows`` (on resume: drop what came after the checkpoint)."""
        tmp = self.path.with_suffix(".jsonl.tmp")
        with tmp.open("w") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
        tmp.replace(self.path)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    with Path(path).open() as f:
        return [json.loads(line) for line in f if line.strip()]


def plot_curve(metrics_jsonl: str | Path, png: str | Path, x: str = "rollout/env_steps_total",
               y: Sequence[str] = ("eval/success_rate", "rollout/success_rate"), title: str | None = None) -> Path:
    """Plot each ``y`` metric against ``x`` (rows lacking either are skipped) to a PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(metrics_jsonl)
    fig, ax = plt.subplots(figsize=(6, 4))
    plotted = 0
    for key in y:
        pts = [(r[x], r[key]) for r in rows if isinstance(r.get(x), (int, float)) and isinstance(r.get(key), (int, float))]
        if pts:
            xs, ys = zip(*pts)
            ax.plot(xs, ys, marker="o", markersize=3, label=key)
            plotted += 1
    ax.set_xlabel(x)
    ax.set_title(title or Path(metrics_jsonl).parent.name, fontsize=9)
    ax.grid(alpha=0.3)
    if plotted:
        ax.legend()
    else:
        ax.text(0.5, 0.5, f"no rows with {x} and any of {list(y)}", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=120)
    plt.close(fig)
    return png
