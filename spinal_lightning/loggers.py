"""The W&B logger of the configs: offline unless the user opts in, one folder per run.

Layout of one run, ``<save_dir>/<name>/<run id>/``::

    config.yaml          the resolved CLI config of this run
    checkpoints/         ModelCheckpoint files
    wandb/offline-run-<time>-<run id>/   W&B's own files, the folder ``wandb sync`` uploads
"""

from __future__ import annotations

import os
import secrets
import string
from pathlib import Path
from typing import Any, Literal

from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.loggers.logger import rank_zero_experiment
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

# Values of WANDB_MODE that wandb 0.31 accepts, mapped to the mode passed to ``wandb.init``.
WANDB_MODES = {
    "online": "online",
    "run": "online",
    "offline": "offline",
    "dryrun": "offline",
    "disabled": "disabled",
}


def resolve_wandb_mode(offline: bool | None) -> str:
    """Return the W&B mode for ``offline``: ``"online"``, ``"offline"`` or ``"disabled"``.

    ``offline=None`` means automatic: ``WANDB_MODE`` if it is set, otherwise online only when
    ``WANDB_API_KEY`` is set, so a machine without a W&B account never prompts for a login.
    """
    if offline is not None:
        return "offline" if offline else "online"

    env_mode = os.environ.get("WANDB_MODE", "").strip().lower()
    if env_mode:
        if env_mode not in WANDB_MODES:
            raise ValueError(
                f"WANDB_MODE={env_mode!r} is not a W&B mode. Expected one of {sorted(WANDB_MODES)}; "
                "unset it to log offline unless WANDB_API_KEY is set."
            )
        return WANDB_MODES[env_mode]

    return "online" if os.environ.get("WANDB_API_KEY") else "offline"


def generate_run_id(length: int = 8) -> str:
    """Return a random W&B run id of lowercase letters and digits, like the ids wandb makes itself.

    It is drawn with ``secrets``, so ``seed_everything`` cannot make two runs share an id.
    """
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


class WandbRunLogger(WandbLogger):
    """Lightning's ``WandbLogger`` with automatic offline mode and a folder of its own per run.

    Args:
        name: experiment name: the W&B run name and the folder under ``save_dir``.
        save_dir: root folder of all experiments.
        project: W&B project.
        offline: ``None`` chooses automatically (see ``resolve_wandb_mode``), ``True`` always logs
            offline, ``False`` always logs online.
        version: id of a W&B run to resume; a new random id when ``None``.
        entity: W&B user or team; ``None`` uses the account's default.
        group: W&B run group, for example to gather the seeds of one setting.
        tags: W&B run tags.
        log_model: upload checkpoints as W&B artifacts (online only; see ``WandbLogger``).
        fallback_to_offline: when an online run cannot start (no network, no login), log offline
            and warn instead of failing.
        **kwargs: more arguments of ``wandb.init``.
    """

    def __init__(
        self,
        name: str = "run",
        save_dir: str = "runs",
        project: str = "spinal_lightning",
        offline: bool | None = None,
        version: str | None = None,
        entity: str | None = None,
        group: str | None = None,
        tags: list[str] | None = None,
        log_model: Literal["all"] | bool = False,
        fallback_to_offline: bool = True,
        **kwargs: Any,
    ) -> None:
        mode = resolve_wandb_mode(offline)
        if log_model and mode != "online":
            rank_zero_warn(
                f"log_model={log_model!r} needs an online W&B run, but this run logs {mode}; checkpoints "
                "stay on disk only. Set WANDB_API_KEY or offline: false to upload them."
            )
            log_model = False

        # NOTE: under DDP every process draws its own id, and only rank 0's is used. Lightning
        # broadcasts the checkpoint folder and log_dir from rank 0, and so does RunConfigSaver.
        run_id = version or generate_run_id()
        super().__init__(
            name=name,
            save_dir=save_dir,
            version=run_id,
            project=project,
            log_model=log_model,
            entity=entity,
            group=group,
            tags=tags,
            mode=mode,
            **kwargs,
        )
        self._run_name = name
        self._root_dir = os.fspath(save_dir)
        self._fallback_to_offline = fallback_to_offline
        # W&B writes its files under <dir>/wandb, so pointing it at the run folder keeps them there.
        self._wandb_init["dir"] = self.log_dir
        # wandb 0.31 warns that `anonymous` has no effect whenever the key is passed, even as None.
        if self._wandb_init.get("anonymous") is None:
            self._wandb_init.pop("anonymous", None)

    @property
    def save_dir(self) -> str:
        """Root folder of all experiments; checkpoints go to ``save_dir/name/version/checkpoints``."""
        return self._root_dir

    @property
    def name(self) -> str:
        """Experiment name, the folder under ``save_dir``."""
        return self._run_name

    @property
    def version(self) -> str:
        """W&B run id, the folder of this run under ``save_dir/name``."""
        return self._experiment.id if self._experiment else self._id

    @property
    def log_dir(self) -> str:
        """Folder of this run: ``save_dir/name/version``."""
        return os.path.join(self.save_dir, self.name, self.version)

    @property
    def mode(self) -> str:
        """W&B mode passed to ``wandb.init``: ``"online"``, ``"offline"`` or ``"disabled"``."""
        return self._wandb_init["mode"]

    @property
    @rank_zero_experiment
    def experiment(self):
        if self._experiment is None:
            # wandb falls back to a temporary folder when ``dir`` does not exist, so create it.
            Path(self._wandb_init["dir"]).mkdir(parents=True, exist_ok=True)
            if self.mode == "online" and self._fallback_to_offline:
                return self._start_online_or_offline()
        return super().experiment

    def _start_online_or_offline(self):
        import wandb

        # NOTE: only a missing login is tested. An unreachable server is expected to raise
        # wandb.errors.CommError after wandb's init timeout (90 s by default).
        try:
            return super().experiment
        except wandb.errors.Error as error:
            rank_zero_warn(
                f"The online W&B run could not start ({type(error).__name__}: {error}). Logging offline "
                "instead; upload the run later with the `wandb sync` command printed at the end. "
                "Run `wandb login` (or set WANDB_API_KEY) and check the network to log online, or set "
                "fallback_to_offline: false to fail instead."
            )
            self._wandb_init["mode"] = "offline"
            return super().experiment

    def finalize(self, status: str) -> None:
        super().finalize(status)
        self._print_sync_command()

    def _print_sync_command(self) -> None:
        # Processes other than rank 0 hold no experiment, so only rank 0 prints.
        experiment = self._experiment
        if experiment is None or self.mode == "disabled" or not getattr(experiment, "offline", False):
            return
        # A path relative to the working directory is shorter to copy, unless it has to climb out of it.
        sync_dir = os.path.relpath(experiment.sync_dir)
        if sync_dir.startswith(os.pardir):
            sync_dir = os.path.abspath(experiment.sync_dir)
        rank_zero_info(
            f"W&B run {experiment.id} was logged offline to {sync_dir}. Upload it with:\n"
            f"  wandb sync {sync_dir}"
        )
