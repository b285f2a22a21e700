"""One run of a head comparison: ``fit`` then ``test`` of one config with one seed.

The comparison starts each run as its own process, so a run that crashes, runs out of memory or
is killed leaves the other runs alone::

    python -m spinal_lightning.compare.single_run --label vgg_spinal --seed 0 --runs-dir DIR \\
        --group GROUP -- --config configs/vgg_spinal.yaml --trainer.max_epochs=1

The run writes its logs, checkpoints and ``result.json`` into ``DIR/<label>/seed<seed>``
(``run_directory``), the result whether it succeeds or fails, and exits with code 1 on failure.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from pathlib import Path
from typing import Any

import lightning as L

from spinal_lightning.cli import SpinalCLI
from spinal_lightning.compare.recorder import ComparisonRecorder
from spinal_lightning.module import SpinalClassifier
from spinal_lightning.resume import is_wandb

RESULT_FILE = "result.json"


def run_directory(runs_dir: Path, label: str, seed: int) -> Path:
    """Return the folder of one run: ``<runs_dir>/<label>/seed<seed>``."""
    return runs_dir / label / f"seed{seed}"


# Config keys that may differ between the heads of a fair comparison: the head itself, where the
# run writes, and the list of config files it was read from.
PER_HEAD_KEYS = ("model.head", "trainer.logger", "trainer.default_root_dir", "config")

# Trainer settings that bound how long a run trains. The report states them.
BUDGET_KEYS = (
    "max_epochs",
    "max_steps",
    "max_time",
    "limit_train_batches",
    "limit_val_batches",
    "limit_test_batches",
    "precision",
)


class ComparisonRunCLI(SpinalCLI):
    """SpinalCLI that writes its logs into the run folder and names the run for W&B.

    A ``WandbLogger`` gets ``name`` ``<label>-seed<seed>``, ``group`` (one per comparison) and
    ``job_type`` ``<label>``, so the W&B project shows the runs of a comparison together. File
    loggers (CSV, TensorBoard) write to the run folder ``<runs_dir>/<label>/seed<seed>``.
    """

    def __init__(self, *args, label: str, seed: int, runs_dir: Path, group: str, **kwargs) -> None:
        self.run_label = label
        self.run_seed = seed
        self.runs_dir = runs_dir
        self.run_dir = run_directory(runs_dir, label, seed)
        self.run_group = group
        super().__init__(*args, **kwargs)

    def before_instantiate_classes(self) -> None:
        super().before_instantiate_classes()
        trainer = self.config["trainer"]
        trainer["default_root_dir"] = str(self.run_dir)

        loggers = trainer.get("logger")
        for logger in loggers if isinstance(loggers, list) else [loggers]:
            if logger is None or isinstance(logger, bool):
                continue
            self.name_logger(logger)

    def name_logger(self, logger) -> None:
        """Point one logger's config (``class_path`` + ``init_args``) at this run."""
        init_args = logger.get("init_args")
        if init_args is None:
            return
        if is_wandb(logger):
            values = {
                "name": f"{self.run_label}-seed{self.run_seed}",
                "group": self.run_group,
                "job_type": self.run_label,
                "save_dir": str(self.run_dir),
            }
        else:
            values = {
                "save_dir": str(self.runs_dir),
                "name": self.run_label,
                "version": f"seed{self.run_seed}",
            }
        for key, value in values.items():
            if key in init_args:
                init_args[key] = value


def flatten(value: Any, prefix: str = "") -> dict[str, str]:
    """Flatten nested dicts into ``{"a.b.c": json text}``, so two configs compare key by key."""
    if isinstance(value, dict):
        flat: dict[str, str] = {}
        for key, item in value.items():
            flat.update(flatten(item, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): json.dumps(value, default=str, sort_keys=True)}


def shared_settings(config: dict[str, Any]) -> dict[str, str]:
    """Return the flattened config without the keys that may differ between heads."""
    return {
        key: value
        for key, value in flatten(config).items()
        if not any(key == excluded or key.startswith(excluded + ".") for excluded in PER_HEAD_KEYS)
        and key != "seed_everything"
    }


def count_parameters(module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


def fit_and_test(
    label: str, seed: int, runs_dir: Path, group: str, cli_args: list[str], result: dict[str, Any]
) -> None:
    """Train and test one head with one seed, and store what the comparison table needs in ``result``.

    ``result`` is filled step by step, so a run that fails during training keeps its parameter
    counts and settings.
    """
    recorder = ComparisonRecorder()
    cli = ComparisonRunCLI(
        SpinalClassifier,
        L.LightningDataModule,
        subclass_mode_data=True,
        args=[*cli_args, f"--seed_everything={seed}"],
        run=False,
        auto_configure_optimizers=False,
        save_config_kwargs={"overwrite": True},
        trainer_defaults={"callbacks": [recorder]},
        label=label,
        seed=seed,
        runs_dir=runs_dir,
        group=group,
    )
    model, datamodule, trainer = cli.model, cli.datamodule, cli.trainer
    config = cli.config.as_dict()

    result.update(
        {
            "head_class": type(model.head).__name__,
            "backbone_class": type(model.backbone).__name__,
            "datamodule_class": type(datamodule).__name__,
            "head_params": count_parameters(model.head),
            "backbone_params": count_parameters(model.backbone),
            "total_params": count_parameters(model),
            "batch_size": getattr(datamodule, "batch_size", None),
            "budget": {key: config["trainer"].get(key) for key in BUDGET_KEYS},
            "settings": shared_settings(config),
        }
    )

    trainer.fit(model, datamodule=datamodule)

    # Test the weights that validation chose when a checkpoint callback kept them, else the last.
    checkpoint = trainer.checkpoint_callback
    best_path = getattr(checkpoint, "best_model_path", "") if checkpoint is not None else ""
    if best_path and getattr(checkpoint, "monitor", None):
        result["test_weights"] = f"best {checkpoint.monitor} checkpoint"
        test_metrics = trainer.test(model, datamodule=datamodule, ckpt_path=best_path)[0]
    else:
        result["test_weights"] = "weights after the last training step"
        test_metrics = trainer.test(model, datamodule=datamodule)[0]

    result.update(
        test_acc=float(test_metrics["test/acc"]),
        test_loss=float(test_metrics["test/loss"]),
        epochs=trainer.current_epoch,
        steps=trainer.global_step,
        train_samples=recorder.train_samples,
        fit_seconds=recorder.fit_seconds,
        train_seconds=recorder.train_seconds,
        images_per_second=recorder.images_per_second,
        first_batch_labels=recorder.first_batch_labels,
        first_batch_pixel_sums=recorder.first_batch_pixel_sums,
    )


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    if "--" not in argv:
        raise SystemExit("usage: single_run --label L --seed S --runs-dir DIR --group G -- CLI_ARGS")
    split = argv.index("--")
    parser = argparse.ArgumentParser(prog="python -m spinal_lightning.compare.single_run")
    parser.add_argument("--label", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--runs-dir", type=Path, required=True)
    parser.add_argument("--group", required=True)
    return parser.parse_args(argv[:split]), argv[split + 1 :]


def main(argv: list[str] | None = None) -> int:
    options, cli_args = parse_args(sys.argv[1:] if argv is None else argv)
    run_dir = run_directory(options.runs_dir, options.label, options.seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"label": options.label, "seed": options.seed, "cli_args": cli_args}

    try:
        fit_and_test(options.label, options.seed, options.runs_dir, options.group, cli_args, result)
        result["status"] = "ok"
    except (Exception, SystemExit) as error:
        # jsonargparse exits with SystemExit on an invalid config. Its message goes to stderr, which
        # the comparison keeps in the run's output.log.
        traceback.print_exc()
        result["status"] = "failed"
        result["error"] = f"{type(error).__name__}: {error}".strip().splitlines()[0]

    (run_dir / RESULT_FILE).write_text(json.dumps(result, indent=2, default=str) + "\n")
    return 0 if result["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
