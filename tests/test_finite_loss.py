"""``FiniteLossGuard`` stops at the first NaN loss and names the last good checkpoint."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from spinal_lightning.callbacks.checkpoint import RunCheckpoint
from spinal_lightning.callbacks.finite_loss import FiniteLossGuard
from spinal_lightning.checkpoint_io import AtomicCheckpointIO
from spinal_lightning.errors import TrainingDivergedError


class DivergingModel(L.LightningModule):
    """A linear model whose loss turns NaN from global step ``nan_from_step`` on."""

    def __init__(self, nan_from_step: int) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 2)
        self.nan_from_step = nan_from_step

    def training_step(self, batch, batch_idx):
        inputs, labels = batch
        loss = torch.nn.functional.cross_entropy(self.layer(inputs), labels)
        return loss * float("nan") if self.global_step >= self.nan_from_step else loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def fit_until_nan(tmp_path, nan_from_step: int) -> tuple[str, DivergingModel]:
    data = TensorDataset(torch.randn(64, 4), torch.randint(0, 2, (64,)))
    model = DivergingModel(nan_from_step)
    checkpoint = RunCheckpoint(
        dirpath=tmp_path, save_last=True, last_every_n_train_steps=2, save_config=False
    )
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=1,
        logger=False,
        callbacks=[checkpoint, FiniteLossGuard()],
        plugins=[AtomicCheckpointIO()],
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    with pytest.raises(TrainingDivergedError) as error:
        trainer.fit(model, DataLoader(data, batch_size=4))
    return str(error.value), model


def test_nan_loss_names_step_batch_and_checkpoint(tmp_path):
    message, model = fit_until_nan(tmp_path, nan_from_step=5)
    last = tmp_path / "last.ckpt"

    assert "The training loss is nan at global step 5 (epoch 0, batch 5)" in message
    assert f"The last good checkpoint is {last}" in message
    assert f"resume with --ckpt_path {last}" in message
    before = torch.load(last, weights_only=True)
    assert before["global_step"] == 4
    assert all(torch.isfinite(tensor).all() for tensor in before["state_dict"].values())
    # The NaN step was stopped before backward, so the weights are still finite.
    assert all(torch.isfinite(parameter).all() for parameter in model.parameters())
