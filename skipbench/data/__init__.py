"""Data sets behind one interface (:class:`ImageData` of in-memory :class:`Split` s)."""

from .base import EpochSampler, ImageData, Split
from .shapes import shapes

__all__ = ["EpochSampler", "ImageData", "Split", "shapes"]
