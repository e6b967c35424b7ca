"""Auto-labelling: training labels for unlabelled images from a segmentor.

Section 4 of Tao et al. (2020): the fused multi-scale model labels extra
street scenes, and only its confident pixels become labels. For every image
the config's test pipeline and model run as ``tools/test.py`` runs them
(whole or slide inference, an HMSA model at its ``test_cfg`` scales and
fusion), and :func:`pseudo_label` keeps the argmax class where the softmax
of the fused logits (``seg_logits`` of the prediction, at the original image
size) reaches the threshold; every other pixel is 255 (ignored).

Pieces, each usable alone:

- :func:`pseudo_label`: logits to a uint8 label map (pure);
- :func:`find_images`: the images of a folder and where each label goes
  (:class:`LabelTask`);
- :func:`read_label`, :func:`write_label`: a label file read back and
  checked, and written through a temporary name and ``os.replace``;
- :class:`AutoLabeller`: a config's segmentor with a checkpoint that must
  fit it (:func:`state_dict_mismatch`);
- :class:`AutoLabelRun`: the resumable loop and ``summary.json``.

Output layout (``OUT`` is ``--out``)::

    Cityscapes layout:
      .../leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png
      -> OUT/gtFine/<split>/<city>/<stem>_gtFine_labelTrainIds.png
    a flat folder:
      IMAGES/<stem>.<ext>  ->  OUT/<stem>_labelTrainIds.png
    OUT/summary.json
"""
import copy
import hashlib
import json
import os
import os.path as osp
import re
import time
from dataclasses import dataclass
from typing import (
    Any,
    Callable,
    Dict,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
)

import cv2
import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import init_default_scope
from mmengine.runner.checkpoint import _load_checkpoint_to_model
from torch import Tensor

from projects.hmsa.checkpoint import load_checkpoint_file
from projects.hmsa.datasets import use_checked_loaders

from . import cli
from .errors import ToolError

#: The label value of pixels left unlabelled (MMSeg's ``ignore_index``).
IGNORE_INDEX = 255
#: Extensions of the images a flat folder may hold.
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')
CITYSCAPES_IMAGE_SUFFIX = '_leftImg8bit.png'
CITYSCAPES_LABEL_SUFFIX = '_gtFine_labelTrainIds.png'
FLAT_LABEL_SUFFIX = '_labelTrainIds.png'
SUMMARY = 'summary.json'
#: The settings a resumed run must share with the labels already there.
RUN_SETTINGS = ('checkpoint_sha256', 'model', 'threshold', 'scales', 'fusion',
                'flip', 'mode')
#: Thresholds at which ``--labels`` also measures the kept share and accuracy
#: (``truth.by_threshold`` of ``summary.json``), to show the trade-off.
CURVE_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
# Attention-branch parameters of an HMSA segmentor (also of a cascade stage).
_ATTENTION_KEY = re.compile(r'(.*\.)?decode_head\.([0-9]+\.)?attention\.')


# ---------------------------------------------------------------------------
# thresholding
# ---------------------------------------------------------------------------
def confidence_and_class(logits: Tensor) -> Tuple[Tensor, Tensor]:
    """The highest class probability of each pixel and its class.

    Args:
        logits (Tensor): Class logits (C, H, W). One channel is a binary
            model's logit (MMSeg's ``out_channels=1``): its classes are 0
            and 1 with probabilities ``1 - sigmoid`` and ``sigmoid``.

    Returns:
        tuple[Tensor, Tensor]: float32 confidence and int64 class, (H, W).

    Raises:
        ValueError: Not (C, H, W), or more classes than a uint8 map holds
            besides 255.
    """
    if logits.dim() != 3:
        raise ValueError('logits must be (C, H, W), got shape '
                         f'{tuple(logits.shape)}')
    logits = logits.detach().float()
    if logits.shape[0] == 1:
        foreground = logits[0].sigmoid()
        probs = torch.stack([1 - foreground, foreground])
    else:
        probs = logits.softmax(dim=0)
    if probs.shape[0] > IGNORE_INDEX:
        raise ValueError(f'{probs.shape[0]} classes do not fit a uint8 label '
                         f'map with {IGNORE_INDEX} for ignored pixels')
    return probs.max(dim=0)


def pseudo_label(logits: Tensor, threshold: float) -> np.ndarray:
    """The confident argmax of one image's logits.

    Args:
        logits (Tensor): Class logits (C, H, W); see
            :func:`confidence_and_class`.
        threshold (float): In [0, 1]. A pixel whose highest softmax
            probability is >= ``threshold`` (compared in float32) gets its
            argmax class, every other pixel (and one with non-finite
            logits) :data:`IGNORE_INDEX`.

    Returns:
        np.ndarray: uint8 (H, W) label map.

    Raises:
        ValueError: Not (C, H, W), a threshold outside [0, 1], or more
            classes than a uint8 map holds besides 255.
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f'threshold must be in [0, 1], got {threshold}')
    return confident_label(*confidence_and_class(logits), threshold)


def confident_label(confidence: Tensor, label: Tensor,
                    threshold: float) -> np.ndarray:
    """:func:`pseudo_label` from :func:`confidence_and_class`'s output."""
    label = label.clone()
    label[~(confidence >= threshold)] = IGNORE_INDEX
    return label.to(torch.uint8).cpu().numpy()


# ---------------------------------------------------------------------------
# images and label files
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class LabelTask:
    """One image and its label file.

    Attributes:
        image (str): The image.
        label (str): The path of its label file relative to the output
            folder (and to ``--labels`` for its true labels).
    """

    image: str
    label: str


def _cityscapes_root(images_dir: str) -> Optional[str]:
    """The ``leftImg8bit`` folder ``images_dir`` is, holds or lies in."""
    images_dir = osp.abspath(images_dir)
    if osp.isdir(osp.join(images_dir, 'leftImg8bit')):
        return osp.join(images_dir, 'leftImg8bit')
    path = images_dir
    while True:
        if osp.basename(path) == 'leftImg8bit':
            return path
        parent = osp.dirname(path)
        if parent == path:
            return None
        path = parent


@dataclass(frozen=True)
class ImageSet:
    """The images of a folder and their label files.

    Attributes:
        folder (str): The folder given.
        layout (str): ``'cityscapes'`` or ``'flat'``.
        tasks (list[LabelTask]): Sorted by image path.
        dataset_root (str, optional): For the Cityscapes layout, the folder
            that holds ``leftImg8bit`` (and the true labels, if any).
    """

    folder: str
    layout: str
    tasks: List[LabelTask]
    dataset_root: Optional[str] = None


def find_images(images_dir: str) -> ImageSet:
    """The images to label and where their labels go.

    A folder that is, holds or lies inside a Cityscapes ``leftImg8bit``
    folder is walked for ``*_leftImg8bit.png`` (symbolic links followed);
    each label goes to ``gtFine/<the image's folder below leftImg8bit>/
    <stem>_gtFine_labelTrainIds.png``, which MMSeg's ``CityscapesDataset``
    reads. Any other folder is flat: its own files with an image extension
    (not ``*_labelTrainIds.png``), labelled ``<stem>_labelTrainIds.png``.

    Args:
        images_dir (str): The folder.

    Returns:
        ImageSet: The layout and the tasks.

    Raises:
        ToolError: The folder is missing or holds no images, or two images
            of a flat folder share a stem.
    """
    if not osp.isdir(images_dir):
        raise ToolError(f'--images {images_dir} is not a folder')
    root = _cityscapes_root(images_dir)
    tasks = []
    if root is not None:
        layout, wanted = 'cityscapes', f'*{CITYSCAPES_IMAGE_SUFFIX}'
        for folder, _, files in os.walk(images_dir, followlinks=True):
            for name in files:
                if not name.endswith(CITYSCAPES_IMAGE_SUFFIX):
                    continue
                stem = name[:-len(CITYSCAPES_IMAGE_SUFFIX)]
                sub = osp.relpath(osp.abspath(folder), root)
                tasks.append(
                    LabelTask(
                        osp.join(folder, name),
                        osp.normpath(
                            osp.join('gtFine', sub,
                                     stem + CITYSCAPES_LABEL_SUFFIX))))
    else:
        layout, wanted = 'flat', ', '.join(IMAGE_EXTENSIONS)
        stems: Dict[str, str] = {}
        for name in sorted(os.listdir(images_dir)):
            path = osp.join(images_dir, name)
            stem, ext = osp.splitext(name)
            if not osp.isfile(path) or ext.lower() not in IMAGE_EXTENSIONS \
                    or name.endswith(FLAT_LABEL_SUFFIX):
                continue
            if stem in stems:
                raise ToolError(
                    f'{stems[stem]} and {name} in {images_dir} would both be '
                    f'labelled {stem}{FLAT_LABEL_SUFFIX}; rename one')
            stems[stem] = name
            tasks.append(LabelTask(path, stem + FLAT_LABEL_SUFFIX))
    if not tasks:
        raise ToolError(f'no images ({wanted}) in {images_dir}')
    return ImageSet(images_dir, layout, sorted(tasks, key=lambda t: t.image),
                    None if root is None else osp.dirname(root))


def image_size(path: str) -> Tuple[int, int]:
    """(height, width) of an image as it is loaded, from its header.

    Raises:
        OSError: The file is missing or not an image PIL recognises.
    """
    from PIL import Image
    with Image.open(path) as im:
        width, height = im.size
        orientation = im.getexif().get(0x0112, 1)
    # OpenCV applies the EXIF orientation when it decodes.
    return (width, height) if orientation in (5, 6, 7, 8) else (height, width)


def read_label(path: str,
               size: Optional[Tuple[int, int]] = None) -> Optional[np.ndarray]:
    """A label file read back, or None if it is no usable label map.

    Args:
        path (str): The file.
        size (tuple[int, int], optional): Its image's (height, width).

    Returns:
        np.ndarray or None: The uint8 (H, W) map; None when the file is
        missing, not a readable PNG, not one uint8 channel, or not
        ``size``.
    """
    if not osp.isfile(path):
        return None
    label = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if label is None or label.ndim != 2 or label.dtype != np.uint8:
        return None
    if size is not None and label.shape != tuple(size):
        return None
    return label


def _atomic_write(path: str, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename."""
    folder, name = osp.split(path)
    os.makedirs(folder or '.', exist_ok=True)
    tmp = osp.join(folder, f'.{name}.{os.getpid()}.tmp')
    try:
        with open(tmp, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)


def write_label(path: str, label: np.ndarray) -> None:
    """Write a uint8 (H, W) label map as a PNG; never a partial file."""
    if label.ndim != 2 or label.dtype != np.uint8:
        raise ValueError('a label map is uint8 (H, W), got '
                         f'{label.dtype} {label.shape}')
    ok, png = cv2.imencode('.png', label)
    if not ok:
        raise OSError(f'cannot encode the label map for {path}')
    _atomic_write(path, png.tobytes())


def file_sha256(path: str) -> str:
    """The SHA-256 of a file, read in blocks."""
    with open(path, 'rb') as f:
        return hashlib.file_digest(f, 'sha256').hexdigest()


# ---------------------------------------------------------------------------
# statistics
# ---------------------------------------------------------------------------
def _share(part: float, whole: float) -> Optional[float]:
    return round(float(part) / float(whole), 6) if whole else None


class LabelStatistics:
    """Labelled pixels per class, and against true labels when given.

    Args:
        num_classes (int): The model's classes (label values 0 .. C-1).
    """

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.pixels = 0
        self.class_pixels = np.zeros(num_classes, np.int64)
        # rows: pseudo label (C = unlabelled), columns: true label
        self.confusion = np.zeros((num_classes + 1, num_classes), np.int64)
        self.truth_images = 0
        # per threshold of CURVE_THRESHOLDS: kept pixels, kept and right
        self.curve = np.zeros((len(CURVE_THRESHOLDS), 2), np.int64)
        self.curve_pixels = 0
        self.curve_images = 0

    def add(self,
            label: np.ndarray,
            truth: Optional[np.ndarray] = None) -> None:
        """Count one label map (and its true labels, same size)."""
        c = self.num_classes
        self.pixels += label.size
        self.class_pixels += np.bincount(label.ravel(), minlength=256)[:c]
        if truth is None:
            return
        valid = truth < c
        pseudo = np.minimum(label[valid].astype(np.int64), c)
        self.confusion += np.bincount(pseudo * c + truth[valid],
                                      minlength=(c + 1) * c).reshape(c + 1, c)
        self.truth_images += 1

    def add_curve(self, confidence: Tensor, best: Tensor,
                  truth: np.ndarray) -> None:
        """Count, at every threshold of :data:`CURVE_THRESHOLDS`, the pixels
        of one image that would be kept and how many of them are right
        (``confidence`` and ``best`` from :func:`confidence_and_class`)."""
        valid = truth < self.num_classes
        confidence = confidence.cpu().numpy()[valid]
        right = best.cpu().numpy()[valid] == truth[valid]
        for i, threshold in enumerate(CURVE_THRESHOLDS):
            kept = confidence >= np.float32(threshold)
            self.curve[i] += (int(kept.sum()), int((kept & right).sum()))
        self.curve_pixels += int(valid.sum())
        self.curve_images += 1

    def summary(self, classes: Sequence[str]) -> Dict[str, Any]:
        """``labelled_share``, ``classes`` and (with true labels)
        ``truth`` of ``summary.json``."""
        per_class = {
            name: dict(pixels=int(n), share=_share(n, self.pixels))
            for name, n in zip(classes, self.class_pixels)
        }
        out = dict(pixels=int(self.pixels),
                   labelled_share=_share(self.class_pixels.sum(), self.pixels),
                   classes=per_class)
        if self.truth_images:
            m = self.confusion
            kept = m[:-1]
            out['truth'] = dict(
                images=self.truth_images,
                pixels=int(m.sum()),
                kept_share=_share(kept.sum(), m.sum()),
                kept_accuracy=_share(np.trace(kept), kept.sum()),
                classes={
                    name:
                    dict(true_pixels=int(m[:, i].sum()),
                         kept_share=_share(kept[:, i].sum(), m[:, i].sum()),
                         accuracy=_share(kept[i, i], kept[i].sum()))
                    for i, name in enumerate(classes)
                })
            if self.curve_images:
                out['truth']['by_threshold'] = dict(
                    images=self.curve_images,
                    rows=[
                        dict(threshold=t,
                             kept_share=_share(kept, self.curve_pixels),
                             kept_accuracy=_share(right, kept))
                        for t, (kept, right) in zip(CURVE_THRESHOLDS,
                                                    self.curve.tolist())
                    ])
        return out


# ---------------------------------------------------------------------------
# the model
# ---------------------------------------------------------------------------
def apply_switches(cfg: Config, scales: Optional[Sequence[float]],
                   fusion: Optional[str], flip: bool) -> None:
    """``--scales``/``--fusion``/``--flip`` into ``cfg.model.test_cfg``
    before the model is built (refused for a model that is not HMSA)."""
    if cfg.model.get('type') == 'SegTTAModel':
        raise ToolError(
            f'{cfg.filename} builds SegTTAModel; auto-label with the '
            'segmentor\'s own config (an HMSA model flips with --flip)')
    cli.apply_test_switches(cfg, scales, fusion)
    if flip:
        cli.require_hmsa(cfg, '--flip')
        cfg.model.setdefault('test_cfg', {})['flip'] = True


def state_dict_mismatch(expected: Mapping[str, Tensor],
                        given: Mapping[str, Any]) -> Dict[str, List[str]]:
    """How a checkpoint's state dict differs from a model's.

    Args:
        expected (Mapping[str, Tensor]): The model's ``state_dict()``.
        given (Mapping[str, Any]): The checkpoint's.

    Returns:
        dict: ``missing`` (keys of the model the checkpoint lacks, but
        BatchNorm's ``num_batches_tracked``, which loads without), and
        ``unexpected`` and ``shape`` (``'key: checkpoint (..) vs model
        (..)'``), each sorted.
    """
    missing = sorted(
        k for k in expected
        if k not in given and not k.endswith('num_batches_tracked'))
    unexpected = sorted(k for k in given if k not in expected)
    shape = sorted(
        f'{k}: checkpoint {tuple(v.shape)} vs model '
        f'{tuple(expected[k].shape)}' for k, v in given.items()
        if k in expected and tuple(getattr(v, 'shape',
                                           ())) != tuple(expected[k].shape))
    return dict(missing=missing, unexpected=unexpected, shape=shape)


def _listed(keys: List[str], limit: int = 6) -> str:
    more = len(keys) - limit
    return ', '.join(
        keys[:limit]) + (f' (and {more} more)' if more > 0 else '')


class AutoLabeller:
    """A config's segmentor with its checkpoint: image file in, logits out.

    The model is built from ``cfg.model`` (its ``test_cfg`` as the config,
    and :func:`apply_switches`, set it) and must be an MMSeg segmentor. The
    checkpoint is read with the plugin's safe loader and must fit the model
    exactly: no missing, unexpected or differently shaped key. One
    exception: an HMSA model that fuses by ``mean`` or ``max`` may lack its
    attention branch (a single-scale checkpoint at several scales), which
    is noted. The test pipeline is the config's
    (``test_dataloader.dataset.pipeline``, else ``test_pipeline``) without
    its annotation loading.

    Args:
        cfg (Config): The config.
        checkpoint (str): A local checkpoint file.
        device (str, optional): Defaults to ``cuda`` when available, else
            ``cpu``.

    Raises:
        ToolError: Not a segmentor, a setting the model refuses, no test
            pipeline, or a checkpoint that does not fit.
    """

    def __init__(self,
                 cfg: Config,
                 checkpoint: str,
                 device: Optional[str] = None) -> None:
        from mmseg.models.segmentors import BaseSegmentor
        from mmseg.registry import MODELS
        init_default_scope(cfg.get('default_scope', 'mmseg'))
        if '://' in checkpoint:
            raise ToolError(f'{checkpoint}: auto-labelling reads a local '
                            'checkpoint file; download it first')
        self.cfg = cfg
        self.checkpoint = checkpoint
        self.device = device or ('cuda'
                                 if torch.cuda.is_available() else 'cpu')
        self.notes: List[str] = []
        try:
            model = MODELS.build(copy.deepcopy(cfg.model))
        except (ValueError, KeyError) as exc:
            raise ToolError(f'cannot build the model of {cfg.filename}: '
                            f'{exc}') from None
        if not isinstance(model, BaseSegmentor):
            raise ToolError(
                f'{cfg.filename} builds {type(model).__name__}, not an MMSeg '
                'segmentor')
        # As MMEngine's runner does outside distributed runs (SyncBN needs
        # a process group); the parameter names stay the same.
        model = revert_sync_batchnorm(model)
        self.is_hmsa = cli.is_hmsa_model(cfg.model)
        loaded = self._load(model)
        self.model = model.to(self.device).eval()
        self.num_classes = 2 if model.out_channels == 1 else \
            model.out_channels
        self.classes = self._classes(loaded)
        self.pipeline = self._pipeline()
        self._settings = self._read_settings()

    # settings ---------------------------------------------------------------
    def settings(self) -> Dict[str, Any]:
        """What makes the labels: ``config``, ``checkpoint``,
        ``checkpoint_sha256``, ``model``, ``scales``, ``fusion``, ``flip``
        and ``mode`` (``summary.json`` keeps them)."""
        return dict(self._settings)

    def _read_settings(self) -> Dict[str, Any]:
        test_cfg = self.model.test_cfg or {}
        if self.is_hmsa:
            scales = sorted(float(s) for s in test_cfg['scales'])
            fusion, flip = test_cfg['fusion'], bool(test_cfg['flip'])
        else:
            scales, fusion, flip = [1.0], 'single', False
        return dict(config=self.cfg.filename,
                    checkpoint=self.checkpoint,
                    checkpoint_sha256=file_sha256(self.checkpoint),
                    model=type(self.model).__name__,
                    scales=scales,
                    fusion=fusion,
                    flip=flip,
                    mode=test_cfg.get('mode', 'whole'))

    def _load(self, model: torch.nn.Module) -> dict:
        """Load the checkpoint into ``model``, refusing any mismatch."""
        checkpoint = load_checkpoint_file(self.checkpoint, map_location='cpu')
        state = checkpoint.get('state_dict', checkpoint) \
            if isinstance(checkpoint, dict) else None
        if not isinstance(state, dict) or not state or not all(
                isinstance(v, Tensor) for v in state.values()):
            raise ToolError(f'{self.checkpoint} holds no state dict of '
                            'tensors')
        state = {re.sub(r'^module\.', '', k): v for k, v in state.items()}
        problems = state_dict_mismatch(model.state_dict(), state)
        fusion = (model.test_cfg or {}).get('fusion')
        branch = [k for k in problems['missing'] if _ATTENTION_KEY.match(k)]
        if self.is_hmsa and fusion in ('mean', 'max') and branch:
            problems['missing'] = [
                k for k in problems['missing'] if k not in branch
            ]
            self.notes.append(
                f'{self.checkpoint} has no attention branch; {fusion} '
                'fusion does not use it')
        if any(problems.values()):
            parts = [
                f'{what} keys: {_listed(problems[key])}'
                for key, what in (('missing', 'missing'), ('unexpected',
                                                           'unexpected'),
                                  ('shape', 'differently shaped'))
                if problems[key]
            ]
            if len(problems['missing']) == len(model.state_dict()):
                parts.insert(0, 'none of its keys is a key of the model')
            elif branch and problems['missing'] == branch and not (
                    problems['unexpected'] or problems['shape']):
                parts.append('it has no attention branch (a single-scale '
                             'checkpoint): use its own config, or fuse by '
                             '--fusion mean or max')
            elif problems['unexpected'] and all(
                    _ATTENTION_KEY.match(k) for k in problems['unexpected']):
                parts.append('it has an attention branch: use an HMSA config')
            raise ToolError(
                f'checkpoint {self.checkpoint} does not fit the model of '
                f'{self.cfg.filename} ({type(model).__name__}): ' +
                '; '.join(parts) + '. Use the config it was trained with.')
        _load_checkpoint_to_model(model,
                                  dict(state_dict=state),
                                  strict=False,
                                  logger='silent')
        return checkpoint

    def _classes(self, checkpoint: dict) -> List[str]:
        """Class names: the checkpoint's dataset meta, else the config's
        test dataset's, else the class indices."""
        from mmseg.registry import DATASETS
        candidates = []
        meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
        if isinstance(meta, dict) and isinstance(meta.get('dataset_meta'),
                                                 dict):
            candidates.append(meta['dataset_meta'].get('classes'))
        dataset = (self.cfg.get('test_dataloader') or {}).get('dataset') or {}
        if (dataset.get('metainfo') or {}).get('classes'):
            candidates.append(dataset['metainfo']['classes'])
        kind = dataset.get('type')
        dataset_class = DATASETS.get(kind) if isinstance(kind, str) else None
        if dataset_class is not None:
            candidates.append(
                getattr(dataset_class, 'METAINFO', {}).get('classes'))
        for classes in candidates:
            if isinstance(classes, (list, tuple)) and \
                    len(classes) == self.num_classes:
                return [str(c) for c in classes]
        self.notes.append('no class names for the model\'s '
                          f'{self.num_classes} classes; using their indices')
        return [str(i) for i in range(self.num_classes)]

    def _pipeline(self) -> Compose:
        dataset = (self.cfg.get('test_dataloader') or {}).get('dataset') or {}
        pipeline = dataset.get('pipeline') or self.cfg.get('test_pipeline')
        if not pipeline:
            raise ToolError(f'{self.cfg.filename} has no test pipeline '
                            '(test_dataloader.dataset.pipeline)')
        pipeline = [
            t for t in copy.deepcopy(pipeline)
            if not str(t.get('type', '')).endswith('LoadAnnotations')
        ]
        if not any('LoadImageFromFile' in str(t.get('type', ''))
                   for t in pipeline):
            raise ToolError(f'the test pipeline of {self.cfg.filename} does '
                            'not load images from files (LoadImageFromFile)')
        use_checked_loaders(pipeline)  # errors name the image
        return Compose(pipeline)

    # inference --------------------------------------------------------------
    def load(self, image: str) -> dict:
        """An image through the test pipeline.

        Raises:
            Exception: The image cannot be read or transformed.
        """
        data = self.pipeline(dict(img_path=image, seg_fields=[]))
        if data is None:
            raise OSError(f'cannot read image {image}')
        return data

    def predict(self, data: dict) -> Tensor:
        """The fused logits (C, H, W) at the image's original size."""
        with torch.no_grad():
            sample = self.model.test_step(pseudo_collate([data]))[0]
        return sample.seg_logits.data

    def describe(self) -> str:
        """The model and its inference settings, in one phrase."""
        s = self.settings()
        if not self.is_hmsa:
            how = 'single-scale'
        else:
            how = (f'scales {", ".join(f"{x:g}" for x in s["scales"])}, '
                   f'{s["fusion"]} fusion' +
                   (', flipped' if s['flip'] else ''))
        return (f'{s["model"]} of {self.cfg.filename} ({how}, {s["mode"]} '
                f'inference, device {self.device})')


# ---------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------
def _one_line(exc: BaseException) -> str:
    text = ' '.join(str(exc).split())
    return text or type(exc).__name__


def write_summary(out_dir: str, summary: Dict[str, Any]) -> str:
    """Write ``OUT/summary.json`` (atomically); return its path."""
    path = osp.join(out_dir, SUMMARY)
    _atomic_write(path, (json.dumps(summary, indent=2) + '\n').encode('utf-8'))
    return path


class AutoLabelRun:
    """Label every image of a folder; skip those already labelled.

    An image whose label file exists and reads back as a uint8 single
    channel PNG of the image's size is skipped (unless ``force``); its
    labels count in the statistics all the same, so ``summary.json``
    describes every label of the image set. An unusable label file is
    remade. An image that cannot be read (or that the test pipeline
    refuses) is reported through ``warn`` and listed in ``failed``; an
    error of the model itself stops the run (labels written so far stay).

    Args:
        labeller (AutoLabeller): The model.
        images (ImageSet): The images (:func:`find_images`).
        out_dir (str): Where labels and ``summary.json`` go.
        threshold (float): See :func:`pseudo_label`.
        force (bool): Remake every label. Defaults to False.
        labels_dir (str, optional): True labels at the same relative paths
            as the output's (a Cityscapes root with ``gtFine/``, or a flat
            folder of ``<stem>_labelTrainIds.png``): the share of labelled
            pixels and their accuracy go to ``summary.json``'s ``truth``.

    Raises:
        ToolError: A bad threshold or ``labels_dir``, ``out_dir`` is the
            images' own dataset root (whose ``gtFine`` holds true labels),
            or (without ``force``) ``out_dir`` holds labels made with other
            settings.
    """

    def __init__(self,
                 labeller: AutoLabeller,
                 images: ImageSet,
                 out_dir: str,
                 threshold: float,
                 force: bool = False,
                 labels_dir: Optional[str] = None) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ToolError(f'--threshold must be in [0, 1], got {threshold}')
        if labels_dir is not None and not osp.isdir(labels_dir):
            raise ToolError(f'--labels {labels_dir} is not a folder')
        if images.dataset_root is not None and osp.isdir(out_dir) and \
                osp.samefile(out_dir, images.dataset_root):
            raise ToolError(
                f'--out {out_dir} is the dataset root of the images, whose '
                'gtFine/ holds their true labels; write the labels to '
                'another folder (a config reads them from anywhere)')
        self.labeller = labeller
        self.images = images
        self.out_dir = out_dir
        self.threshold = float(threshold)
        self.force = force
        self.labels_dir = labels_dir
        self.tasks = images.tasks
        self.settings = dict(labeller.settings(), threshold=self.threshold)
        if not force:
            self._check_previous_settings()

    def _check_previous_settings(self) -> None:
        path = osp.join(self.out_dir, SUMMARY)
        if not osp.isfile(path):
            return
        try:
            with open(path) as f:
                previous = json.load(f)
        except (OSError, ValueError):
            return
        differ = [
            f'{key} {previous.get(key)!r} there, {self.settings[key]!r} now'
            for key in RUN_SETTINGS if previous.get(key) != self.settings[key]
        ]
        if differ:
            raise ToolError(
                f'{self.out_dir} holds labels made with other settings (' +
                '; '.join(differ) + '): pass --force to remake them all, '
                'or choose another --out')

    @property
    def num_images(self) -> int:
        return len(self.tasks)

    def describe(self) -> str:
        """What :meth:`run` will do, in one line."""
        return (f'Auto-labelling {self.num_images} images of '
                f'{self.images.folder} ({self.images.layout} layout) into '
                f'{self.out_dir} at threshold {self.threshold:g} with the '
                f'{self.labeller.describe()}')

    def _summary(self, stats: LabelStatistics, counts: Dict[str, int],
                 failed: List[dict], missing_truth: List[str], seconds: float,
                 complete: bool) -> Dict[str, Any]:
        summary = dict(self.settings)
        summary.update(complete=complete,
                       images_dir=self.images.folder,
                       layout=self.images.layout,
                       images=dict(found=self.num_images, **counts),
                       failed=failed,
                       ignore_index=IGNORE_INDEX,
                       device=self.labeller.device,
                       seconds=round(seconds, 2),
                       notes=list(self.labeller.notes))
        summary.update(stats.summary(self.labeller.classes))
        if self.labels_dir is not None:
            summary.setdefault('truth', dict(images=0))
            summary['truth'].update(labels_dir=self.labels_dir,
                                    missing=len(missing_truth),
                                    missing_examples=missing_truth[:10])
        return summary

    def _truth(self, task: LabelTask, shape: Tuple[int,
                                                   int], missing: List[str],
               warn: Callable[[str], None]) -> Optional[np.ndarray]:
        if self.labels_dir is None:
            return None
        path = osp.join(self.labels_dir, task.label)
        truth = read_label(path)
        if truth is None:
            missing.append(path)
        elif truth.shape != shape:
            warn(f'true label map {path} is {truth.shape[0]}x'
                 f'{truth.shape[1]}, its image {shape[0]}x{shape[1]}; '
                 'left out of the accuracy')
            missing.append(path)
            truth = None
        return truth

    def run(self,
            progress: Optional[Callable[[], None]] = None,
            warn: Callable[[str], None] = print) -> Dict[str, Any]:
        """Label the images; write and return ``summary.json``'s content.

        Args:
            progress (callable, optional): Called after each image.
            warn (callable): Gets a message for each image that failed.

        Returns:
            dict: The summary: the settings (``config``, ``checkpoint``,
            ``checkpoint_sha256``, ``model``, ``threshold``, ``scales``,
            ``fusion``, ``flip``, ``mode``), ``images`` (``found``,
            ``done``, ``skipped``, ``failed``, ``remade``: unusable label
            files written again), ``failed`` (``image``, ``error``),
            ``labelled_share`` and per class ``pixels`` and ``share`` over
            every label of the image set, ``truth`` with ``labels_dir``.
        """
        start = time.time()
        stats = LabelStatistics(self.labeller.num_classes)
        counts = dict(done=0, skipped=0, failed=0, remade=0)
        failed: List[dict] = []
        missing_truth: List[str] = []
        write_summary(
            self.out_dir,
            self._summary(stats, counts, failed, missing_truth, 0.0, False))
        for task in self.tasks:
            out = osp.join(self.out_dir, task.label)
            label, scored, exists = None, None, osp.exists(out)
            if exists and not self.force:
                try:
                    label = read_label(out, image_size(task.image))
                except OSError:
                    label = None  # an unreadable image: it fails below
            if label is not None:
                counts['skipped'] += 1
            else:
                try:
                    data = self.labeller.load(task.image)
                except Exception as exc:
                    error = _one_line(exc)
                    counts['failed'] += 1
                    failed.append(dict(image=task.image, error=error))
                    if task.image not in error:
                        error = f'{task.image}: {error}'
                    warn(f'{error}; no label for it')
                    if progress:
                        progress()
                    continue
                scored = confidence_and_class(self.labeller.predict(data))
                label = confident_label(*scored, self.threshold)
                write_label(out, label)
                counts['done'] += 1
                if exists and not self.force:
                    counts['remade'] += 1  # its old label was unusable
            truth = self._truth(task, label.shape, missing_truth, warn)
            stats.add(label, truth)
            if truth is not None and scored is not None:
                stats.add_curve(*scored, truth)
            if progress:
                progress()
        summary = self._summary(stats, counts, failed, missing_truth,
                                time.time() - start, True)
        write_summary(self.out_dir, summary)
        return summary


def report_lines(summary: Dict[str, Any], out_dir: str) -> List[str]:
    """What the tool prints when a run is over."""
    images = summary['images']
    lines = [
        f'{images["found"]} images: {images["done"]} labelled, '
        f'{images["skipped"]} skipped (labels already there), '
        f'{images["failed"]} failed'
    ]
    if summary['labelled_share'] is not None:
        top = sorted(summary['classes'].items(),
                     key=lambda kv: -kv[1]['pixels'])[:5]
        most = ', '.join(f'{name} {100 * c["share"]:.1f}%' for name, c in top
                         if c['pixels'])
        lines.append(
            f'Labelled {100 * summary["labelled_share"]:.1f}% of the pixels '
            f'at threshold {summary["threshold"]:g}' +
            (f' (most: {most})' if most else ''))
    truth = summary.get('truth')
    if truth and truth.get('images'):
        accuracy = truth['kept_accuracy']
        lines.append(
            f'Against the true labels of {truth["images"]} images: '
            f'{100 * truth["kept_share"]:.1f}% of the pixels labelled, ' +
            ('none' if accuracy is None else f'{100 * accuracy:.2f}%') +
            ' of them correct')
    if truth and truth.get('missing'):
        lines.append(f'{truth["missing"]} images have no usable true labels '
                     f'in {truth["labels_dir"]} (e.g. '
                     f'{truth["missing_examples"][0]})')
    lines.extend(f'note: {note}' for note in summary['notes'])
    if summary['failed']:
        lines.append(f'warning: {len(summary["failed"])} images could not '
                     'be read (reasons in summary.json); no labels for them:')
        lines.extend(f'    {f["image"]}' for f in summary['failed'])
    lines.append(f'Written {osp.join(out_dir, SUMMARY)}')
    return lines
