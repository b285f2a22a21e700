"""Spinal head against the FC head it replaces: forward + backward time and memory, head and model.

Both heads are the VGG-5 ones of configs/vgg_spinal.yaml and configs/vgg_fc.yaml. Each
measurement alternates Spinal and FC, repeated, and reports the median time per batch, images/s,
the parameter and gradient bytes, and the activation bytes autograd saves for the backward pass.
Saved-tensor hooks count those bytes, so the figure does not depend on the device. On CUDA it
also reports the peak allocated memory of one training step.

    python benchmarks/heads.py --batch-size 100 --repeats 20
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

# `python benchmarks/<script>.py` puts only benchmarks/ on sys.path; the imports below need the root.
if not __package__:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.plain_loop import AUTOCAST_DTYPES, build_model  # noqa: E402
from benchmarks.timing import synchronize  # noqa: E402
from spinal_lightning.precision import resolve_precision


def saved_activation_bytes(module: torch.nn.Module, inputs: torch.Tensor, autocast) -> int:
    """Bytes of the tensors autograd keeps from ``module(inputs)`` for the backward pass."""
    total = 0
    seen: set[int] = set()

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        nonlocal total
        # Parameters are saved too but already counted as model memory; count each storage once.
        pointer = tensor.untyped_storage().data_ptr()
        if not isinstance(tensor, torch.nn.Parameter) and pointer not in seen:
            seen.add(pointer)
            total += tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor), autocast():
        module(inputs).float().sum().backward()
    module.zero_grad(set_to_none=True)
    return total


def time_step(module: torch.nn.Module, inputs: torch.Tensor, labels: torch.Tensor, autocast) -> float:
    """Seconds for one forward + cross-entropy + backward."""
    synchronize(inputs.device)
    start = time.perf_counter()
    with autocast():
        loss = F.cross_entropy(module(inputs), labels)
    loss.backward()
    synchronize(inputs.device)
    seconds = time.perf_counter() - start
    module.zero_grad(set_to_none=True)
    return seconds


def peak_cuda_bytes(module: torch.nn.Module, inputs: torch.Tensor, labels: torch.Tensor, autocast) -> int | None:
    if inputs.device.type != "cuda":
        return None
    torch.cuda.reset_peak_memory_stats(inputs.device)
    time_step(module, inputs, labels, autocast)
    return torch.cuda.max_memory_allocated(inputs.device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=20, help="timed steps per head and part")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    torch.manual_seed(0)
    device = torch.device(args.device)
    precision = resolve_precision(args.precision, device.type)
    dtype = AUTOCAST_DTYPES.get(precision)

    def autocast():
        return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)

    models = {
        name: build_model(name).to(device, memory_format=torch.channels_last).train() for name in ("spinal", "fc")
    }
    images = torch.randn(args.batch_size, 1, 28, 28, device=device).contiguous(memory_format=torch.channels_last)
    features = torch.randn(args.batch_size, 256, device=device)
    labels = torch.randint(0, 10, (args.batch_size,), device=device)
    parts = {
        "head": ({name: model[1] for name, model in models.items()}, features),
        "model": (models, images),
    }

    print(f"device {device}, precision {precision}, batch {args.batch_size}, {args.repeats} alternating repeats")
    print(f"{'part':6s} {'head':7s} {'params':>10s} {'param+grad MB':>14s} {'saved act. MB':>14s} "
          f"{'peak MB':>8s} {'ms/batch':>9s} {'images/s':>10s}")  # fmt: skip
    for part, (modules, inputs) in parts.items():
        times: dict[str, list[float]] = {name: [] for name in modules}
        for step in range(args.warmup + args.repeats):
            # Alternate which head goes first, so drifts of a shared machine hit both alike.
            for name in sorted(modules, reverse=step % 2 == 1):
                seconds = time_step(modules[name], inputs, labels, autocast)
                if step >= args.warmup:
                    times[name].append(seconds)

        medians = {}
        for name, module in modules.items():
            parameters = sum(parameter.numel() for parameter in module.parameters())
            parameter_bytes = 2 * sum(p.numel() * p.element_size() for p in module.parameters())
            saved = saved_activation_bytes(module, inputs, autocast)
            peak = peak_cuda_bytes(module, inputs, labels, autocast)
            medians[name] = statistics.median(times[name])
            peak_text = f"{peak / 2**20:8.1f}" if peak is not None else f"{'-':>8s}"
            print(
                f"{part:6s} {name:7s} {parameters:10,d} {parameter_bytes / 2**20:14.2f} {saved / 2**20:14.2f} "
                f"{peak_text} {1000 * medians[name]:9.2f} {args.batch_size / medians[name]:10.0f}"
            )
        print(f"{part:6s} time spinal / fc: {medians['spinal'] / medians['fc']:.2f}")


if __name__ == "__main__":
    main()
