"""VGG-5 and the torchvision backbones: sizes, initialisation and offline weight loading."""

import pytest
import torch
import torchvision

from spinal_lightning.backbones import VGG5, TorchvisionBackbone


def count_parameters(module: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


def test_vgg5_trunk_parameter_count():
    assert count_parameters(VGG5()) == 3_508_416


def test_vgg5_returns_256_flat_features():
    backbone = VGG5(in_channels=1)

    features = backbone(torch.randn(2, 1, 28, 28))

    assert backbone.num_features == 256
    assert features.shape == (2, 256)


def test_vgg5_initialisation_matches_fan_out_rule():
    torch.manual_seed(0)
    backbone = VGG5()
    convolutions = [module for module in backbone.modules() if isinstance(module, torch.nn.Conv2d)]
    norms = [module for module in backbone.modules() if isinstance(module, torch.nn.BatchNorm2d)]

    last = convolutions[-1]  # 256 x 256 x 3 x 3: enough samples for a tight estimate
    expected_std = (2.0 / (3 * 3 * 256)) ** 0.5

    assert last.weight.std().item() == pytest.approx(expected_std, rel=0.02)
    assert all(torch.all(norm.weight == 1) and torch.all(norm.bias == 0) for norm in norms)


@pytest.mark.parametrize(
    ("name", "num_features", "stock_hidden"),
    [
        ("alexnet", 9216, (4096, 4096)),
        ("vgg11", 25088, (4096, 4096)),
        ("vgg13_bn", 25088, (4096, 4096)),
        ("resnet18", 512, ()),
        ("resnet50", 2048, ()),
    ],
)
def test_torchvision_backbone_sizes(name, num_features, stock_hidden):
    backbone = TorchvisionBackbone(name=name)

    assert backbone.num_features == num_features
    assert backbone.stock_hidden_features == stock_hidden


def test_resnet_backbone_forward_on_grey_images():
    backbone = TorchvisionBackbone(name="resnet18", in_channels=1).eval()

    features = backbone(torch.randn(2, 1, 64, 64))

    assert features.shape == (2, 512)
    assert backbone.model.conv1.in_channels == 1


def test_local_checkpoint_weights_are_loaded(tmp_path):
    torch.manual_seed(1)
    reference = torchvision.models.resnet18()
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)

    backbone = TorchvisionBackbone(name="resnet18", weights=str(path))

    assert torch.equal(backbone.model.conv1.weight, reference.conv1.weight)
    assert torch.equal(backbone.model.layer4[1].bn2.running_mean, reference.layer4[1].bn2.running_mean)


def test_local_weights_for_grey_images_sum_rgb_filters(tmp_path):
    reference = torchvision.models.alexnet()
    path = tmp_path / "alexnet.pth"
    torch.save({"state_dict": reference.state_dict()}, path)

    backbone = TorchvisionBackbone(name="alexnet", in_channels=1, weights=str(path))

    first = backbone.model.features[0]
    assert torch.allclose(first.weight, reference.features[0].weight.sum(dim=1, keepdim=True))


def test_weights_from_other_architecture_are_rejected(tmp_path):
    path = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)

    with pytest.raises(ValueError, match="does not match the architecture: missing keys"):
        TorchvisionBackbone(name="resnet34", weights=str(path))


def test_missing_weights_file_is_reported(tmp_path):
    missing = tmp_path / "absent.pth"

    with pytest.raises(FileNotFoundError, match="absent.pth' not found"):
        TorchvisionBackbone(name="resnet18", weights=str(missing))


def test_unknown_weight_name_lists_choices():
    with pytest.raises(ValueError, match="Unknown weights 'IMAGENET9K' for resnet18. Expected one of"):
        TorchvisionBackbone(name="resnet18", weights="IMAGENET9K")


def test_unknown_backbone_name_lists_supported():
    with pytest.raises(ValueError, match="Unknown torchvision backbone 'lenet'"):
        TorchvisionBackbone(name="lenet")
