"""The TorchThreads callback sets the thread count for a run and restores it afterwards."""

from __future__ import annotations

import functools

import lightning as L
import torch

from spinal_lightning.backbones import SmallCNN
from spinal_lightning.callbacks.threads import TorchThreads
from spinal_lightning.data import DigitsDataModule
from spinal_lightning.heads import SpinalHead
from spinal_lightning.module import SpinalClassifier


def test_torch_threads_restored_after_fit(tmp_path):
    class RecordThreads(L.Callback):
        def on_train_start(self, trainer, pl_module):
            self.threads = torch.get_num_threads()

    before = torch.get_num_threads()
    record = RecordThreads()
    head = functools.partial(SpinalHead, layer_width=8)
    model = SpinalClassifier(backbone=SmallCNN, head=head, in_channels=1)
    trainer = L.Trainer(
        max_epochs=1,
        limit_train_batches=1,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[TorchThreads(num_threads=1), record],
        default_root_dir=tmp_path,
    )
    trainer.fit(model, datamodule=DigitsDataModule())

    assert record.threads == 1
    assert torch.get_num_threads() == before
