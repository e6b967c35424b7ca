"""Hierarchical Multi-Scale Attention (Tao, Sapra, Catanzaro 2020) for MMSeg.

Importing this package (e.g. through a config's ``custom_imports``) registers
the segmentors, the decode heads, the loading transforms and the category
metric into MMSegmentation's registries, and makes
MMEngine's own checkpoint loaders read files through :mod:`.checkpoint`
(no code from a file runs). Loaders other packages registered are left as
they are. The tools' library, :mod:`projects.hmsa_tools`, is not imported; the
per-scale visualizer lives there (``tools/test.py --show-dir`` uses it).
"""
from . import (  # noqa: F401
    checkpoint,
    datasets,
    evaluation,
    models,
)

__version__ = '0.1.0'
