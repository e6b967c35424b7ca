"""Per-scale pictures of chosen image files, drawn with a config's model.

:class:`ScalePictures` runs the model at every scale with per-scale outputs
and draws each image with :class:`.HMSALocalVisualizer`: the image, the
ground truth (found next to Cityscapes-layout files), the fused prediction,
each scale's prediction and attention, and the class legend.
"""
import copy
import itertools
import os
import os.path as osp
from typing import Optional, Sequence

import mmcv
import torch
from mmcv.transforms import Compose
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope
from mmseg.registry import DATASETS

from ..evaluation.scale_evaluation import build_multiscale_model
from .hmsa_visualizer import HMSALocalVisualizer

_instances = itertools.count()


def cityscapes_label_path(image_path: str) -> Optional[str]:
    """The Cityscapes train-id label file of an image, if it exists.

    Args:
        image_path (str): Path of a ``*_leftImg8bit.png`` image.

    Returns:
        str, optional: Path of its ``*_gtFine_labelTrainIds.png``, or None.
    """
    head, name = osp.split(image_path)
    if not name.endswith('_leftImg8bit.png'):
        return None
    parts = head.split(os.sep)
    if 'leftImg8bit' not in parts:
        return None
    i = len(parts) - 1 - parts[::-1].index('leftImg8bit')
    parts[i] = 'gtFine'
    label = osp.join(
        os.sep.join(parts),
        name.replace('_leftImg8bit.png', '_gtFine_labelTrainIds.png'))
    return label if osp.isfile(label) else None


def class_meta(cfg: Config, checkpoint: dict) -> Optional[dict]:
    """Class names and palette for the pictures.

    Args:
        cfg (Config): The config; its test dataset's type is the fallback.
        checkpoint (dict): The loaded checkpoint; its
            ``meta.dataset_meta`` comes first.

    Returns:
        dict, optional: ``classes`` and ``palette``, or None when neither
        source has both.
    """
    meta = checkpoint.get('meta', {}).get('dataset_meta')
    if not meta:
        dataset_type = cfg.get('test_dataloader', {}).get('dataset', {}).get(
            'type', 'CityscapesDataset')
        meta = getattr(DATASETS.get(dataset_type), 'METAINFO', None)
    if meta and 'classes' in meta and 'palette' in meta:
        return dict(classes=meta['classes'], palette=meta['palette'])
    return None


class ScalePictures:
    """Draw what each scale predicts and where it is trusted, per image.

    Args:
        cfg (Config): A config with ``model`` (HMSA or a stock
            ``EncoderDecoder``) and, optionally, ``test_pipeline``.
        checkpoint (str): The checkpoint to load.
        scales (Sequence[float]): The inference scales; they include 1.
        fusion (str, optional): The rule of the fused panel. Defaults to
            ``attention`` when the head has an attention branch, else
            ``mean``.
        panel_width (int): Width of each panel in pixels. Defaults to 768.
        device (str, optional): Where the model runs. Defaults to ``cuda``
            when available, else ``cpu``.

    Raises:
        ValueError: A setting the model refuses when it is built (e.g. a
            fusion rule its head lacks), or ``panel_width`` below 32.
    """

    def __init__(self,
                 cfg: Config,
                 checkpoint: str,
                 scales: Sequence[float],
                 fusion: Optional[str] = None,
                 panel_width: int = 768,
                 device: Optional[str] = None) -> None:
        init_default_scope(cfg.get('default_scope', 'mmseg'))
        device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
        self.visualizer = HMSALocalVisualizer(
            name=f'scale_pictures_{next(_instances)}',
            panel_width=panel_width)
        self.model, loaded = build_multiscale_model(
            cfg.model, checkpoint, scales, True, device, fusion)
        meta = class_meta(cfg, loaded)
        if meta is not None:
            self.visualizer.dataset_meta = meta
        steps = copy.deepcopy(cfg.get('test_pipeline') or [])
        if not steps:
            steps = [dict(type='LoadImageFromFile'),
                     dict(type='PackSegInputs')]
        self._loads_labels = any(
            s.get('type') == 'LoadAnnotations' for s in steps)
        self._with_gt = Compose(steps)
        self._without_gt = Compose(
            [s for s in steps if s.get('type') != 'LoadAnnotations'])

    def draw(self, image_path: str, out_file: str) -> bool:
        """Predict one image file and write its picture.

        Args:
            image_path (str): The image.
            out_file (str): The PNG to write.

        Returns:
            bool: Whether the picture has the ground truth (a Cityscapes
            label file next to the image, and a pipeline that loads it).
        """
        label = cityscapes_label_path(image_path)
        with_gt = label is not None and self._loads_labels
        if with_gt:
            data = self._with_gt(
                dict(img_path=image_path, seg_map_path=label,
                     reduce_zero_label=False, seg_fields=[]))
        else:
            data = self._without_gt(dict(img_path=image_path))
        with torch.no_grad():
            sample = self.model.test_step(pseudo_collate([data]))[0]
        image = mmcv.imread(image_path, channel_order='rgb')
        name = osp.splitext(osp.basename(image_path))[0]
        self.visualizer.add_datasample(
            name, image, data_sample=sample, out_file=out_file)
        return with_gt
