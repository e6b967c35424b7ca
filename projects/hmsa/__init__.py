"""Hierarchical Multi-Scale Attention (Tao, Sapra, Catanzaro 2020) for MMSeg.

Importing this package (e.g. through a config's ``custom_imports``) registers
the segmentor, the decode heads, the category metric and the visualizer into
MMSegmentation's registries, registers the tools' runner add-ons
(``engine``) into MMEngine's, and makes every checkpoint MMEngine loads, from
any path or URL prefix, go through the validating reader of ``checkpoint``
(no code from a file runs, stored config text is withheld unless trusted).
"""
from . import (
    checkpoint,  # noqa: F401
    datasets,  # noqa: F401
    engine,  # noqa: F401
    evaluation,  # noqa: F401
    models,  # noqa: F401
    visualization,  # noqa: F401
)

__version__ = '0.1.0'
