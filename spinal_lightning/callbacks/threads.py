"""Set how many CPU threads PyTorch uses inside each operation."""

from __future__ import annotations

import lightning as L
import torch


class TorchThreads(L.Callback):
    """Set ``torch.set_num_threads(num_threads)`` at setup and restore the previous count at teardown.

    For very small models (such as the 8 x 8 digits demo) each operation is too short to share
    among threads: synchronising them costs more than the work, above all on a busy CPU. One
    thread then runs faster. Larger models should keep PyTorch's default (one thread per core).

    Args:
        num_threads: intra-op threads, at least 1.
    """

    def __init__(self, num_threads: int = 1) -> None:
        if num_threads < 1:
            raise ValueError(f"num_threads must be a positive integer, got {num_threads!r}.")
        self.num_threads = num_threads
        self.previous_threads: int | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.previous_threads = torch.get_num_threads()
        torch.set_num_threads(self.num_threads)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # The process may train or evaluate something larger next, as a test session does.
        if self.previous_threads is not None:
            torch.set_num_threads(self.previous_threads)
            self.previous_threads = None
