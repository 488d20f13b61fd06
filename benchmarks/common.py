"""Shared by the benchmark scripts: where results go and what each result records."""

from __future__ import annotations

import datetime
import json
import os
import platform
import resource
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    try:
        import torch

        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception:
        gpu = None
    return {"cores": os.cpu_count(), "gpu": gpu, "python": platform.python_version(),
            "platform": platform.platform()}


def peak_rss_mb() -> float:
    """Peak resident memory of this process and its finished children, in MiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round(max(own, children) / 1024, 1)


def write_result(name: str, data: dict) -> Path:
    """Write benchmarks/results/<name>.json with the command, machine and date."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    script = os.path.relpath(os.path.abspath(sys.argv[0]), RESULTS.parent.parent)
    record = {"command": "python " + " ".join([script] + sys.argv[1:]),
              "date": datetime.date.today().isoformat(), "machine": machine(), **data}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {path}")
    return path
