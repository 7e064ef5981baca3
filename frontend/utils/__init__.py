"""Utilities that sit on top of the tensor core, as in ``torch.utils``.

``data`` is imported here so that ``import frontend as torch`` followed by
``torch.utils.data.DataLoader`` works, as it does with PyTorch (provided
``frontend/__init__`` imports ``utils``).
"""

from . import data

__all__ = ["data"]
