"""Pictures of each scale's prediction and attention for a checkpoint."""
from .scale_pictures import ScalePictures, cityscapes_label_path

__all__ = ['ScalePictures', 'cityscapes_label_path']
