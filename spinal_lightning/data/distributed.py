"""Batch sizes and evaluation samplers for data-parallel (DDP) runs, where each process reads a shard.

Lightning gives every process of a DDP run a ``DistributedSampler``. That sampler pads the data set
by repeating samples until it divides by the number of processes, which is harmless in training but
makes an evaluation metric count the repeated samples twice. Evaluation loaders therefore get
``UnrepeatedDistributedSampler`` here: disjoint shards that cover every sample exactly once, at the
cost of one process running one batch fewer than another in some runs.
"""

from __future__ import annotations

from collections.abc import Sized

import lightning as L
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler


def per_device_batch_size(global_batch_size: int, world_size: int) -> int:
    """Split a global batch size evenly over ``world_size`` processes (devices x nodes)."""
    if global_batch_size % world_size:
        lower = max(global_batch_size // world_size, 1) * world_size
        raise ValueError(
            f"global_batch_size={global_batch_size} does not divide by the world size {world_size} "
            f"(devices x nodes), so the processes cannot get equal batches. Set "
            f"data.global_batch_size to a multiple of {world_size} (for example {lower} or "
            f"{lower + world_size}), or set the per-device size with data.batch_size instead."
        )
    return global_batch_size // world_size


def evaluation_sampler(dataset: Sized, trainer: L.Trainer | None) -> UnrepeatedDistributedSampler | None:
    """Return a sampler that shards ``dataset`` over the processes without padding.

    Returns ``None`` outside data-parallel runs, where the loader's own sequential order is used.
    A loader that already has a ``DistributedSampler`` is left alone by Lightning, so this sampler
    replaces the padding one that Lightning would otherwise inject.
    """
    sampler_kwargs = trainer.distributed_sampler_kwargs if trainer is not None else None
    if not sampler_kwargs or sampler_kwargs.get("num_replicas", 1) < 2:
        return None

    num_replicas, rank = sampler_kwargs["num_replicas"], sampler_kwargs["rank"]
    # DistributedDataParallel broadcasts the BatchNorm buffers, a call that every process must join,
    # in the first forward pass after a training step. A process without samples would block the rest.
    if len(dataset) < num_replicas:
        raise ValueError(
            f"The evaluation set has {len(dataset)} samples, fewer than the {num_replicas} processes "
            "of this run, so some process would get none. Use a larger validation or test set, or "
            "fewer devices."
        )
    return UnrepeatedDistributedSampler(dataset, num_replicas=num_replicas, rank=rank, shuffle=False)
