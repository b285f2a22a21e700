"""Side-by-side comparison of classifier heads: ``python -m spinal_lightning compare --help``."""

from spinal_lightning.compare.command import main

__all__ = ["main"]
