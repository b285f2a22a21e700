"""``predict`` over a folder of images and over a tensor file writes a CSV; bad files are listed."""

from __future__ import annotations

import csv
from pathlib import Path

import lightning as L
import pytest
import torch
from PIL import Image

from spinal_lightning.backbones import VGG5
from spinal_lightning.callbacks.prediction_writer import PredictionCSVWriter
from spinal_lightning.data.predict import PredictionDataModule
from spinal_lightning.heads import SpinalHead
from spinal_lightning.module import SpinalClassifier
from tests.conftest import CONFIGS, run_cli


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def write_images(folder: Path) -> None:
    folder.mkdir()
    generator = torch.Generator().manual_seed(0)
    for index in range(3):
        pixels = torch.randint(0, 256, (28, 28), dtype=torch.uint8, generator=generator)
        Image.fromarray(pixels.numpy()).save(folder / f"shirt{index}.png")
    # A larger RGB image is converted to grey and resized, not rejected.
    Image.new("RGB", (64, 40), color=(200, 10, 10)).save(folder / "big_colour.jpg")
    (folder / "broken.png").write_bytes(b"\x89PNG not really")
    (folder / "notes.txt").write_text("not an image")


def predict_in_process(path: Path, output: Path) -> PredictionCSVWriter:
    model = SpinalClassifier(
        backbone=VGG5,
        head=lambda features, classes: SpinalHead(features, classes, layer_width=16),
        num_classes=10,
    )
    writer = PredictionCSVWriter(output=str(output))
    datamodule = PredictionDataModule(path=str(path), batch_size=4, class_names=[f"c{i}" for i in range(10)])
    trainer = L.Trainer(
        accelerator="cpu",
        logger=False,
        callbacks=[writer],
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.predict(model, datamodule=datamodule, return_predictions=False)
    return writer


def test_folder_predictions_list_unreadable_files(tmp_path):
    write_images(tmp_path / "images")
    output = tmp_path / "out" / "predictions.csv"

    writer = predict_in_process(tmp_path / "images", output)

    rows = {Path(row["file"]).name: row for row in read_rows(output)}
    assert sorted(rows) == [
        "big_colour.jpg",
        "broken.png",
        "notes.txt",
        "shirt0.png",
        "shirt1.png",
        "shirt2.png",
    ]
    for name in ("big_colour.jpg", "shirt0.png", "shirt1.png", "shirt2.png"):
        assert 0 <= int(rows[name]["prediction"]) < 10
        assert rows[name]["class_name"] == f"c{rows[name]['prediction']}"
        assert 0.1 <= float(rows[name]["probability"]) <= 1.0  # the top class of 10 has at least 1/10
        assert rows[name]["error"] == ""
    for name in ("broken.png", "notes.txt"):
        assert rows[name]["prediction"] == ""
        assert "cannot identify image file" in rows[name]["error"]
    assert len(writer.unreadable) == 2
    assert not output.with_name("predictions.csv.partial").exists()


def test_tensor_file_predictions(tmp_path):
    images = torch.randint(0, 256, (5, 28, 28), dtype=torch.uint8)
    torch.save(images, tmp_path / "batch.pt")
    output = tmp_path / "predictions.csv"

    predict_in_process(tmp_path / "batch.pt", output)

    rows = read_rows(output)
    assert [row["file"] for row in rows] == [f"{tmp_path / 'batch.pt'}[{index}]" for index in range(5)]
    assert all(row["error"] == "" and row["prediction"] != "" for row in rows)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"path": "missing_folder"}, "Prediction input 'missing_folder' not found"),
        ({"path": "empty_folder"}, "The folder 'empty_folder' contains no files to predict"),
        ({"path": "x", "mean": (0.5, 0.5)}, "need one value per channel (1)"),
        ({"path": "x", "class_names": ["a"]}, "class_names has 1 names but num_classes=10"),
        ({"path": "dict.pt"}, "'dict.pt' contains a dict, expected one tensor of images"),
        ({"path": "rgb.pt"}, "shape (2, 3, 5, 5); expected (N, 1, H, W)"),
        ({"path": "garbage.pt"}, "Tensor file 'garbage.pt' cannot be read"),
    ],
)
def test_prediction_data_rejects_bad_input(arguments, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty_folder").mkdir()
    torch.save({"images": torch.zeros(2, 28, 28)}, tmp_path / "dict.pt")
    torch.save(torch.zeros(2, 3, 5, 5), tmp_path / "rgb.pt")
    (tmp_path / "garbage.pt").write_bytes(b"not a tensor file")

    with pytest.raises((ValueError, FileNotFoundError)) as error:
        PredictionDataModule(**arguments).setup("predict")

    assert message in str(error.value)


def test_predict_command_with_checkpoint(tmp_path, fashion_mnist_dir):
    """The documented command: the fit config, the predict overlay, a folder and a checkpoint."""
    write_images(tmp_path / "images")

    # The head of configs/vgg_spinal.yaml, which the command builds before loading the weights.
    def head(in_features: int, num_classes: int) -> SpinalHead:
        return SpinalHead(
            in_features, num_classes, layer_width=128, dropout=0.5, batch_norm=True, activation="relu"
        )

    model = SpinalClassifier(backbone=VGG5, head=head, num_classes=10)
    trainer = L.Trainer(accelerator="cpu", logger=False, max_steps=0, enable_checkpointing=False)
    trainer.strategy.connect(model)
    trainer.save_checkpoint(tmp_path / "model.ckpt")

    result = run_cli(
        [
            "predict",
            "--config",
            str(CONFIGS / "vgg_spinal.yaml"),
            "--config",
            str(CONFIGS / "predict_fashion_mnist.yaml"),
            "--data.path=images",
            "--ckpt_path=model.ckpt",
            "--trainer.enable_progress_bar=false",
        ],
        cwd=tmp_path,
    )

    assert result.returncode == 0, result.stderr
    rows = read_rows(tmp_path / "predictions.csv")
    assert len(rows) == 6
    assert sum(row["error"] != "" for row in rows) == 2
    assert "2 input(s) could not be read" in result.stderr
