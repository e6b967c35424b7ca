"""The visualizer that draws each scale's prediction and attention."""
from .hmsa_visualizer import HMSALocalVisualizer, attention_heatmap

__all__ = ['HMSALocalVisualizer', 'attention_heatmap']
