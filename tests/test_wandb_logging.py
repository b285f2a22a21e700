"""End-to-end W&B logging: short real fits and a test run in offline mode, read back from W&B's files.

An offline run of wandb 0.31 keeps its config, summary and history only in the binary
``run-<id>.wandb`` log, a LevelDB-style log of protobuf ``Record`` messages. ``read_wandb_log``
decodes it with the protobuf classes that wandb itself ships.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from conftest import CONFIGS, FAST_TRAINER_ARGS, run_cli

# Fewer and smaller batches than FAST_TRAINER_ARGS, and a log entry every step, so the learning
# rate and the step loss reach the history of a 3-step fit.
RUN_ARGS = [
    *FAST_TRAINER_ARGS,
    "--trainer.limit_train_batches=3",
    "--trainer.limit_val_batches=2",
    "--trainer.limit_test_batches=2",
    "--trainer.log_every_n_steps=1",
    "--data.batch_size=32",
]

# Exact counts of VGG-5 with the "VGG"-style Spinal head (layer_width 128, 4 layers) on 10 classes.
VGG5_SPINAL_COUNTS = {
    "model/params/total": 3_629_770,
    "model/params/trainable": 3_629_770,
    "model/params/backbone": 3_508_416,
    "model/params/head": 121_354,
    "model/params/replaced_fc_head": 137_738,
    "model/params/head_reduction": 1.135,
}

# Layout of the .wandb file: a 7-byte file header, then 32 KiB blocks of records, each with a
# 7-byte header (CRC32, length, type) and a payload that may be split over blocks.
BLOCK_SIZE = 32 * 1024
RECORD_HEADER = struct.Struct("<IHB")
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


@dataclass
class WandbLog:
    """Config, summary and history keys of one W&B run, as decoded from its ``.wandb`` file."""

    config: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)

    def history_keys(self) -> set[str]:
        return {key for row in self.history for key in row}


def _apply_items(target: dict, items) -> dict:
    """Set every item into ``target``; an item with a ``nested_key`` path fills nested dicts."""
    for item in items:
        path = [item.key] if item.key else list(item.nested_key)
        node = target
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = json.loads(item.value_json)
    return target


def read_wandb_log(path: Path) -> WandbLog:
    """Decode the config updates, summary updates and history rows of a ``run-<id>.wandb`` file."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} does not start with the W&B log header"

    payloads = []
    offset, pending = 7, b""
    while offset + RECORD_HEADER.size <= len(data):
        left_in_block = BLOCK_SIZE - offset % BLOCK_SIZE
        if left_in_block < RECORD_HEADER.size:
            offset += left_in_block  # the writer pads a block tail too short for a header
            continue
        _, length, kind = RECORD_HEADER.unpack_from(data, offset)
        chunk = data[offset + RECORD_HEADER.size : offset + RECORD_HEADER.size + length]
        offset += RECORD_HEADER.size + length
        if kind == FULL:
            payloads.append(chunk)
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        elif kind == LAST:
            payloads.append(pending + chunk)

    log = WandbLog()
    for payload in payloads:
        record = wandb_internal_pb2.Record()
        record.ParseFromString(payload)
        kind = record.WhichOneof("record_type")
        if kind == "config":
            _apply_items(log.config, record.config.update)
        elif kind == "summary":
            _apply_items(log.summary, record.summary.update)
        elif kind == "history":
            log.history.append(_apply_items({}, record.history.item))
    return log


@dataclass
class Run:
    """One finished CLI process and the W&B run it wrote."""

    process: object
    folder: Path  # runs/vgg_spinal/<run id>
    sync_dir: Path  # runs/vgg_spinal/<run id>/wandb/offline-run-<time>-<run id>

    @property
    def run_id(self) -> str:
        return self.folder.name

    @property
    def output(self) -> str:
        return self.process.stdout + self.process.stderr

    def log(self) -> WandbLog:
        return read_wandb_log(self.sync_dir / f"run-{self.run_id}.wandb")


def _run_and_find(args: list[str], cwd: Path, known: set[Path]) -> Run:
    process = run_cli(args, cwd)
    assert process.returncode == 0, f"CLI failed:\n{process.stdout[-3000:]}\n{process.stderr[-3000:]}"

    folders = set((cwd / "runs" / "vgg_spinal").iterdir()) - known
    assert len(folders) == 1, f"expected one new run folder, found {sorted(map(str, folders))}"
    folder = folders.pop()
    sync_dirs = list((folder / "wandb").glob(f"offline-run-*-{folder.name}"))
    assert len(sync_dirs) == 1, f"expected one offline W&B run in {folder}, found {sync_dirs}"
    return Run(process, folder, sync_dirs[0])


@pytest.fixture(scope="module")
def runs(tmp_path_factory, fashion_mnist_dir) -> dict[str, Run]:
    """Two fits in a row in one folder, then a test run from the first fit's last checkpoint."""
    cwd = tmp_path_factory.mktemp("wandb_runs")
    config = ["--config", str(CONFIGS / "vgg_spinal.yaml"), *RUN_ARGS, f"--data.data_dir={fashion_mnist_dir}"]

    known: set[Path] = set()
    first = _run_and_find(["fit", *config], cwd, known)
    known.add(first.folder)
    second = _run_and_find(["fit", *config], cwd, known)
    known.add(second.folder)

    checkpoint = first.folder / "checkpoints" / "last.ckpt"
    test = _run_and_find(["test", *config, f"--ckpt_path={checkpoint}"], cwd, known)
    return {"first": first, "second": second, "test": test, "cwd": cwd}


def test_fit_logs_parameter_counts_to_config_and_summary(runs):
    log = runs["first"].log()

    for key, expected in VGG5_SPINAL_COUNTS.items():
        assert log.config.get(key) == expected, f"config {key}"
        assert log.summary.get(key) == expected, f"summary {key}"


def test_fit_prints_parameter_table(runs):
    output = runs["first"].output

    assert "3,629,770" in output
    assert "121,354" in output
    assert "137,738" in output


def test_fit_logs_resolved_cli_config(runs):
    config = runs["first"].log().config

    assert config["model"]["head"]["class_path"] == "spinal_lightning.SpinalHead"
    assert config["model"]["head"]["init_args"]["layer_width"] == 128
    assert config["model"]["optimizer"]["init_args"]["lr"] == 0.005
    assert config["trainer"]["limit_train_batches"] == 3
    assert config["trainer"]["logger"]["class_path"] == "spinal_lightning.loggers.WandbRunLogger"
    assert config["data"]["init_args"]["batch_size"] == 32
    assert config["seed_everything"] == 0


def test_fit_logs_stage_metrics(runs):
    log = runs["first"].log()
    keys = log.history_keys()

    for stage in ("train", "val"):
        for name in ("acc", "acc_top5", "error"):
            assert f"{stage}/{name}" in keys
    assert "train/loss_step" in keys
    assert "train/loss_epoch" in keys
    assert "val/loss" in keys
    assert "lr-Adam" in keys


def test_fit_error_is_one_minus_accuracy(runs):
    summary = runs["first"].log().summary

    for stage in ("train", "val"):
        assert summary[f"{stage}/error"] == pytest.approx(1 - summary[f"{stage}/acc"], abs=1e-6)


def test_fit_logs_best_validation_accuracy(runs):
    summary = runs["first"].log().summary

    assert summary["val/acc_best"] == pytest.approx(summary["val/acc"])


def test_fit_logs_learning_rate_every_step(runs):
    history = runs["first"].log().history
    rates = [row["lr-Adam"] for row in history if "lr-Adam" in row]

    assert len(rates) == 3
    assert rates[0] == pytest.approx(0.005)


def test_two_fits_in_one_folder_keep_own_runs(runs):
    first, second = runs["first"], runs["second"]

    assert first.run_id != second.run_id
    assert first.sync_dir != second.sync_dir
    for run in (first, second):
        saved = yaml.safe_load((run.folder / "config.yaml").read_text())
        assert saved["model"]["head"]["init_args"]["layer_width"] == 128
        assert saved["trainer"]["logger"]["init_args"]["name"] == "vgg_spinal"
        assert (run.folder / "checkpoints" / "last.ckpt").is_file()
        assert run.log().config["model/params/total"] == 3_629_770


def test_offline_fit_prints_sync_command(runs):
    first = runs["first"]
    match = re.search(r"wandb sync (\S+)", first.output)

    assert match, first.output[-2000:]
    synced = (runs["cwd"] / match.group(1)).resolve()
    assert synced == first.sync_dir.resolve()


def test_test_run_logs_test_metrics(runs):
    summary = runs["test"].log().summary

    for name in ("acc", "acc_top5", "error", "loss"):
        assert f"test/{name}" in summary
    assert 0.0 <= summary["test/acc"] <= 1.0


def test_test_run_logs_confusion_matrix_image(runs):
    test = runs["test"]
    summary = test.log().summary

    image = summary["test/confusion_matrix"]
    assert image["_type"] == "image-file"
    assert image["format"] == "png"
    image_file = test.sync_dir / "files" / image["path"]
    assert image_file.is_file()
    assert image_file.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_test_run_logs_per_class_table(runs):
    test = runs["test"]
    table_ref = test.log().summary["test/per_class_accuracy"]

    assert table_ref["_type"] == "table-file"
    table = json.loads((test.sync_dir / "files" / table_ref["path"]).read_text())
    assert table["columns"] == ["class", "accuracy", "support"]
    assert [row[0] for row in table["data"]][:2] == ["T-shirt/top", "Trouser"]
    assert len(table["data"]) == 10
    # Two test batches of 32: every image is counted once in the supports.
    assert sum(row[2] for row in table["data"]) == 64
