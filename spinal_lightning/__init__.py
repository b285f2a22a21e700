"""SpinalNet classification heads with a Lightning training template.

The heads and backbones are plain PyTorch modules::

    from spinal_lightning import SpinalHead
    head = SpinalHead(in_features=2048, num_classes=100, layer_width=512)
"""

from spinal_lightning.backbones import VGG5, TorchvisionBackbone
from spinal_lightning.heads import FCHead, SpinalHead

__all__ = ["FCHead", "SpinalHead", "TorchvisionBackbone", "VGG5"]
__version__ = "0.1.0"
