"""``--ckpt_path last`` resolution: which checkpoint is picked and how each logger is pinned to its run."""

from __future__ import annotations

import os
from pathlib import Path

from jsonargparse import Namespace

from spinal_lightning.resume import prepare_resume


def subcommand_config(ckpt_path: str | None, logger: Namespace) -> Namespace:
    return Namespace(ckpt_path=ckpt_path, trainer=Namespace(logger=logger))


def make_checkpoint(path: Path, mtime: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"checkpoint")
    os.utime(path, (mtime, mtime))
    return path


def csv_logger(save_dir: Path) -> Namespace:
    return Namespace(
        class_path="lightning.pytorch.loggers.CSVLogger",
        init_args=Namespace(save_dir=str(save_dir), name="run"),
    )


def test_last_picks_newest_run_and_pins_csv_version(tmp_path):
    make_checkpoint(tmp_path / "run/version_0/checkpoints/last.ckpt", mtime=1_000)
    newest = make_checkpoint(tmp_path / "run/version_3/checkpoints/last.ckpt", mtime=2_000)
    make_checkpoint(tmp_path / "other/version_9/checkpoints/last.ckpt", mtime=3_000)
    config = subcommand_config("last", csv_logger(tmp_path))

    prepare_resume(config)

    assert config.ckpt_path == str(newest)
    assert config.trainer.logger.init_args.version == 3


def test_explicit_path_pins_named_version(tmp_path):
    path = make_checkpoint(tmp_path / "run/baseline/checkpoints/epoch003.ckpt", mtime=1_000)
    config = subcommand_config(str(path), [csv_logger(tmp_path)])

    prepare_resume(config)

    assert config.ckpt_path == str(path)
    assert config.trainer.logger[0].init_args.version == "baseline"


def test_wandb_logger_resumes_run_id(tmp_path):
    make_checkpoint(tmp_path / "spinal/abc123xy/checkpoints/last.ckpt", mtime=1_000)
    logger = Namespace(
        class_path="lightning.pytorch.loggers.WandbLogger",
        init_args=Namespace(save_dir=str(tmp_path), project="spinal"),
    )
    config = subcommand_config("last", logger)

    prepare_resume(config)

    assert config.trainer.logger.init_args.id == "abc123xy"
    assert config.trainer.logger.init_args.resume == "allow"


def test_last_resumes_own_logger_kind(tmp_path):
    # A CSV run and a W&B run of the same config name: each logger resumes its own kind of run.
    wandb_checkpoint = make_checkpoint(tmp_path / "run/k3x9q2ab/checkpoints/last.ckpt", mtime=1_000)
    (tmp_path / "run/k3x9q2ab/wandb").mkdir()
    csv_checkpoint = make_checkpoint(tmp_path / "run/version_0/checkpoints/last.ckpt", mtime=2_000)
    wandb_logger = Namespace(
        class_path="spinal_lightning.loggers.WandbRunLogger",
        init_args=Namespace(save_dir=str(tmp_path), name="run"),
    )

    wandb_config = subcommand_config("last", wandb_logger)
    prepare_resume(wandb_config)
    assert wandb_config.ckpt_path == str(wandb_checkpoint)
    assert wandb_config.trainer.logger.init_args.version == "k3x9q2ab"

    os.utime(wandb_checkpoint, (3_000, 3_000))
    csv_config = subcommand_config("last", csv_logger(tmp_path))
    prepare_resume(csv_config)
    assert csv_config.ckpt_path == str(csv_checkpoint)
    assert csv_config.trainer.logger.init_args.version == 0


def test_no_previous_run_leaves_config_alone(tmp_path):
    config = subcommand_config("last", csv_logger(tmp_path))

    prepare_resume(config)

    assert config.ckpt_path == "last"
    assert config.trainer.logger.init_args.get("version") is None


def test_checkpoint_outside_logger_folder_starts_new_version(tmp_path):
    path = make_checkpoint(tmp_path / "elsewhere/model.ckpt", mtime=1_000)
    config = subcommand_config(str(path), csv_logger(tmp_path))

    prepare_resume(config)

    assert config.trainer.logger.init_args.get("version") is None
