"""A one-line description of the machine and software a comparison ran on."""

from __future__ import annotations

import datetime
import os
import platform
import shutil
import subprocess


def cpu_model() -> str:
    """Return the CPU model name that ``lscpu`` reports, or Python's guess where it is missing."""
    if shutil.which("lscpu"):
        output = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in output.splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "Model name":
                return value.strip()
    return platform.processor() or platform.machine()


def describe_machine() -> dict[str, str]:
    """Return the CPU, GPU, core count, library versions and the UTC date, as report lines."""
    import lightning
    import torch

    if torch.cuda.is_available():
        accelerator = f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
    else:
        accelerator = "none (CPU only)"
    return {
        "cpu": cpu_model(),
        # The cores this process may use, which is what bounds training speed in a container.
        "cpu_cores": str(
            len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        ),
        "gpu": accelerator,
        "software": (
            f"Python {platform.python_version()}, torch {torch.__version__}, "
            f"lightning {lightning.__version__}, {platform.system()} {platform.release()}"
        ),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
