"""Resume a run in its own folder: find its ``last.ckpt`` and point the logger back at that run.

Lightning resolves ``--ckpt_path last`` inside the checkpoint folder of the *new* logger version,
and a versioned logger (CSV, TensorBoard) or a new W&B run gets a fresh folder on every start, so
``last`` would find nothing and silently start over. Before the classes are instantiated,
``prepare_resume`` replaces ``last`` with the newest ``last*.ckpt`` of this logger's runs and pins
the logger to that run. CSV and TensorBoard loggers get the run's ``version``. ``WandbLogger``
gets ``id`` plus ``resume="allow"``, since its checkpoint folder is named after the W&B run id.
This project's ``WandbRunLogger`` gets ``version`` plus ``resume="allow"``, since its run folder
``save_dir/name/<run id>`` is named after the id as well.
"""

from __future__ import annotations

from pathlib import Path

from jsonargparse import Namespace
from jsonargparse.typing import import_object
from lightning.pytorch.loggers import WandbLogger

from spinal_lightning.loggers import WandbRunLogger

CHECKPOINT_FOLDER = "checkpoints"
DEFAULT_NAME = "lightning_logs"


def prepare_resume(config: Namespace) -> None:
    """Resolve ``config.ckpt_path`` and pin the first logger of ``config.trainer`` to that run."""
    ckpt_path = config.get("ckpt_path")
    logger = first_logger(config.get("trainer", Namespace()).get("logger"))
    if not ckpt_path or logger is None or ckpt_path in ("best", "hpc"):
        return

    root = logger_root(logger)
    if ckpt_path == "last":
        found = newest_last_checkpoint(root, is_wandb(logger))
        if found is None:
            # Lightning then warns that no last checkpoint exists and starts a new run.
            return
        config.ckpt_path = str(found)
        ckpt_path = config.ckpt_path

    run_name = run_name_of_checkpoint(Path(ckpt_path), root)
    if run_name is not None:
        pin_logger_to_run(logger, run_name)


def first_logger(logger) -> Namespace | None:
    """Return the first logger given as ``class_path`` + ``init_args``, or None for the defaults."""
    if isinstance(logger, list):
        logger = logger[0] if logger else None
    if isinstance(logger, Namespace) and logger.get("class_path"):
        if logger.get("init_args") is None:
            logger.init_args = Namespace()
        return logger
    # NOTE: ``logger: true`` (Lightning's default logger) is not pinned, so `--ckpt_path last` only
    # finds a checkpoint in the folder of the new version there.
    return None


def logger_class(logger: Namespace) -> type:
    """Return the class that a ``class_path`` + ``init_args`` logger config names."""
    return import_object(logger.class_path)


def is_wandb(logger: Namespace) -> bool:
    """Tell whether the logger config names ``WandbLogger`` or a subclass of it."""
    return issubclass(logger_class(logger), WandbLogger)


def logger_root(logger: Namespace) -> Path:
    """Return ``<save_dir>/<name>``, the folder with one subfolder per run of this logger."""
    init_args = logger.init_args
    save_dir = init_args.get("save_dir") or init_args.get("dir") or "."
    if issubclass(logger_class(logger), WandbRunLogger):
        name = init_args.get("name")
    elif is_wandb(logger):
        name = init_args.get("project")
    else:
        name = init_args.get("name", DEFAULT_NAME)
    return Path(save_dir) / (name or DEFAULT_NAME)


def newest_last_checkpoint(root: Path, wandb: bool) -> Path | None:
    """Return the most recently written ``last*.ckpt`` of a run of this kind of logger.

    A CSV run and a W&B run of the same config share ``root``. Resuming the other kind's run would
    pin a W&B logger to the run id ``version_0``, or a CSV logger to a W&B run id, so each kind of
    logger only considers its own runs.
    """
    candidates = [
        path
        for path in root.glob(f"*/{CHECKPOINT_FOLDER}/last*.ckpt")
        if path.is_file() and is_wandb_run(path.parent.parent) == wandb
    ]
    return max(candidates, key=lambda path: path.stat().st_mtime) if candidates else None


def is_wandb_run(run_folder: Path) -> bool:
    """Tell whether ``run_folder`` was written by a W&B logger rather than a CSV or TensorBoard one.

    ``WandbRunLogger`` keeps its ``wandb/`` files inside the run folder. A run of a versioned logger
    without an explicit version is named ``version_<n>``, and a W&B run id never has that form.
    """
    if (run_folder / "wandb").is_dir():
        return True
    return version_number(run_folder.name) is None


def version_number(run_name: str) -> int | None:
    """Return ``n`` for a run folder named ``version_<n>`` by a CSV or TensorBoard logger, else None."""
    prefix = "version_"
    if run_name.startswith(prefix) and run_name[len(prefix) :].isdigit():
        return int(run_name[len(prefix) :])
    return None


def run_name_of_checkpoint(ckpt_path: Path, root: Path) -> str | None:
    """Return the run folder name of a checkpoint at ``root/<run>/checkpoints/<file>``, if it is there."""
    folder = ckpt_path.resolve().parent
    if folder.name != CHECKPOINT_FOLDER or folder.parent.parent != root.resolve():
        return None
    return folder.parent.name


def pin_logger_to_run(logger: Namespace, run_name: str) -> None:
    """Make ``logger`` write into the existing run ``run_name`` instead of starting a new one.

    The run folder name is what Lightning builds from the logger's version: ``version_<n>`` for an
    integer version of a CSV or TensorBoard logger, the W&B run id for ``WandbLogger``.
    """
    init_args = logger.init_args
    if issubclass(logger_class(logger), WandbRunLogger):
        init_args.version = run_name
        init_args.resume = "allow"
        return
    if is_wandb(logger):
        init_args.id = run_name
        init_args.resume = "allow"
        return
    number = version_number(run_name)
    init_args.version = run_name if number is None else number
