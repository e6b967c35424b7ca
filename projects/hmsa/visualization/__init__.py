"""Visualization of the HMSA plugin: per-scale predictions and attention."""
from .hmsa_visualizer import HMSALocalVisualizer, attention_heatmap

__all__ = ['HMSALocalVisualizer', 'attention_heatmap']
