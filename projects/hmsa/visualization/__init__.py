"""Visualization of the HMSA plugin: per-scale predictions and attention."""
from .hmsa_visualizer import HMSALocalVisualizer, attention_heatmap
from .scale_pictures import ScalePictures, cityscapes_label_path

__all__ = [
    'HMSALocalVisualizer', 'attention_heatmap', 'ScalePictures',
    'cityscapes_label_path'
]
