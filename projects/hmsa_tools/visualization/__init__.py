"""Pictures of each scale's prediction and attention: the visualizer
``tools/test.py --show-dir`` switches to for HMSA models (importing this
package registers it), and the pictures of ``tools/visualize_scales.py``."""
from .hmsa_visualizer import HMSALocalVisualizer, attention_heatmap
from .scale_pictures import ScalePictures, cityscapes_label_path

__all__ = [
    'HMSALocalVisualizer', 'attention_heatmap', 'ScalePictures',
    'cityscapes_label_path'
]
