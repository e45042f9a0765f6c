"""The one machine description of probpose (every result file carries it) and thread control."""

from __future__ import annotations

import contextlib
import os
import platform
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import torch

__all__ = ["machine_description", "set_threads"]


def set_threads(n: int | None) -> int:
    """Set torch's intra-op thread count (``None`` or 0: leave it) and return the count in use.
    Benchmarks set it explicitly: on a busy machine the default can make a step 100x slower."""
    if n:
        torch.set_num_threads(int(n))
    return torch.get_num_threads()


@contextlib.contextmanager
def threads(n: int | None) -> Iterator[int]:
    """Run a block with ``n`` torch threads (``None``: as they are), restoring the count after."""
    previous = torch.get_num_threads()
    try:
        yield set_threads(n)
    finally:
        torch.set_num_threads(previous)


def machine_description(device: str | torch.device = "cpu") -> dict:
    """CPU, thread count, library versions and, for CUDA, the GPU, its driver and CUDA version."""
    import numpy
    import pyro

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    device = str(device)
    desc = {
        "date_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "pyro": pyro.__version__,
        "numpy": numpy.__version__,
        "device": device,
    }
    try:
        import normflows

        desc["normflows"] = normflows.__version__
    except (ImportError, AttributeError):
        pass
    if device.startswith("cuda") and torch.cuda.is_available():
        dev = torch.device(device)
        desc["gpu"] = torch.cuda.get_device_name(dev)
        desc["cuda"] = torch.version.cuda
        try:
            import subprocess

            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
            desc["driver"] = out.stdout.strip().splitlines()[0] if out.stdout.strip() else "unknown"
        except (OSError, subprocess.SubprocessError):
            desc["driver"] = "unknown"
    return desc
