"""Feature extractors that return flat features and expose their width as ``num_features``."""

from spinal_lightning.backbones.small_cnn import SmallCNN
from spinal_lightning.backbones.torchvision_backbone import SUPPORTED_NAMES, TorchvisionBackbone
from spinal_lightning.backbones.vgg5 import VGG5

__all__ = ["SUPPORTED_NAMES", "SmallCNN", "TorchvisionBackbone", "VGG5"]
