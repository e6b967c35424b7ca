"""Evaluate one model at each single scale and with every fusion rule.

The network runs once per image and scale; every row of the result (each
single scale, ``mean``, ``max``, hierarchical ``attention`` and, for models
trained that way, ``explicit`` fusion) is derived from those same per-scale
outputs with the segmentor's own fusion functions and post-processing, so
each row equals what ``tools/test.py`` reports for that setting (same
scales, same fusion).

The ``oracle`` row is the headroom of every fusion rule: a pixel counts as
right when any of the scales' own predictions is right there (elsewhere it
keeps the 1.0 scale's prediction). It is an upper bound for every rule that
picks, pixel by pixel, one of the scales' predictions.
"""
import copy
import logging
import re
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import torch
from mmengine.config import ConfigDict
from mmengine.logging import MMLogger
from mmseg.structures import SegDataSample
from torch import Tensor

from projects.hmsa.evaluation import CityscapesCategoryMetric
from projects.hmsa.models import (
    HMSA_SEGMENTOR_TYPES,
    HMSAEncoderDecoder,
    check_scales,
)
from projects.hmsa.models.fusion import resize_to

#: Decode heads and the architecture name shown in result tables.
HEAD_NAMES = {
    'DepthwiseSeparableASPPHead': 'DeepLabV3+',
    'HMSASepASPPHead': 'DeepLabV3+',
    'ASPPHead': 'DeepLabV3',
    'HMSAASPPHead': 'DeepLabV3',
    'OCRHead': 'OCR',
}


@dataclass(frozen=True)
class RowSpec:
    """One evaluation setting: a single scale or a fusion over scales.

    Attributes:
        scales (tuple[float]): The scales the row uses.
        fusion (str): ``'single'``, ``'oracle'`` or one of the fusion rules
            (``'mean'``, ``'max'``, ``'attention'``, ``'explicit'``).
    """

    scales: Tuple[float, ...]
    fusion: str

    @property
    def name(self) -> str:
        """Short unique name, e.g. ``'single@0.5'`` or ``'attention'``."""
        if self.fusion == 'single':
            return f'single@{self.scales[0]:g}'
        return self.fusion


@dataclass
class RowResult:
    """Metrics of one :class:`RowSpec`.

    Attributes:
        spec (RowSpec): The setting.
        metrics (dict): What :class:`CityscapesCategoryMetric` returned
            (``aAcc``, ``mIoU``, ``mAcc`` and, when the dataset has the
            Cityscapes classes, ``category_mIoU``/``category_IoU.<name>``).
    """

    spec: RowSpec
    metrics: Dict[str, float] = field(default_factory=dict)


def row_specs(scales: Sequence[float],
              with_attention: bool,
              explicit: bool = False,
              oracle: bool = True) -> List[RowSpec]:
    """The rows evaluated for ``scales``.

    Each single scale (ascending), then ``mean`` and ``max`` fusion, if the
    head has an attention branch hierarchical ``attention`` fusion (and
    ``explicit`` fusion if asked), and last the ``oracle``. A single scale
    gives one row only.

    Args:
        scales (Sequence[float]): Inference scales; must hold 1.0.
        with_attention (bool): Whether to add the attention row.
        explicit (bool): Whether to add the explicit-attention row (for a
            model trained with ``train_cfg.fusion='explicit'``).
        oracle (bool): Whether to add the oracle row.

    Returns:
        list[RowSpec]: The rows, in table order.
    """
    scales = check_scales(list(scales))
    rows = [RowSpec((s, ), 'single') for s in scales]
    if len(scales) > 1:
        rules = ['mean', 'max']
        if with_attention:
            rules += ['attention'] + (['explicit'] if explicit else [])
        if oracle:
            rules.append('oracle')
        rows += [RowSpec(tuple(scales), rule) for rule in rules]
    return rows


def oracle_prediction(preds: Sequence[Tensor], label: Tensor,
                      fallback: Tensor) -> Tensor:
    """Per-pixel oracle over several predictions of one image.

    Args:
        preds (Sequence[Tensor]): Label maps of the same shape, one per
            scale.
        label (Tensor): The ground truth, same shape.
        fallback (Tensor): What a pixel keeps where no prediction is right.

    Returns:
        Tensor: ``label`` where any prediction equals it, else ``fallback``.
    """
    label = label.to(fallback.device)
    hit = torch.zeros_like(label, dtype=torch.bool)
    for pred in preds:
        if pred.shape != label.shape:
            raise ValueError(
                f'the oracle needs predictions at the label\'s size '
                f'{tuple(label.shape)}, got {tuple(pred.shape)}')
        hit |= pred == label
    return torch.where(hit, label, fallback)


def as_multiscale_model_cfg(model_cfg: dict) -> ConfigDict:
    """Model config that runs under :class:`HMSAEncoderDecoder`.

    A stock ``EncoderDecoder`` config (e.g. a single-scale DeepLabV3+
    checkpoint's) becomes an ``HMSAEncoderDecoder`` (a
    ``CascadeEncoderDecoder`` an ``HMSACascadeEncoderDecoder``) with the
    same modules
    and parameter names, so its checkpoint loads unchanged and it can be
    tested at several scales with ``mean``/``max`` fusion. Training and
    pretraining settings are dropped; an HMSA config is returned as is.

    Args:
        model_cfg (dict): The ``model`` section of a config.

    Returns:
        ConfigDict: A copy, ready to build for inference.

    Raises:
        ValueError: For segmentors other than (HMSA)EncoderDecoder and
            (HMSA)CascadeEncoderDecoder.
    """
    cfg = ConfigDict(copy.deepcopy(dict(model_cfg)))
    kind = cfg.get('type')
    if kind in HMSA_SEGMENTOR_TYPES:
        cfg.type = HMSA_SEGMENTOR_TYPES[kind]
    elif kind not in HMSA_SEGMENTOR_TYPES.values():
        supported = [*HMSA_SEGMENTOR_TYPES, *HMSA_SEGMENTOR_TYPES.values()]
        raise ValueError(
            f'multi-scale evaluation supports {", ".join(supported)} '
            f'models, the config has {kind!r}')
    cfg.pretrained = None
    if isinstance(cfg.get('backbone'), dict):
        cfg.backbone.pop('init_cfg', None)
    cfg.train_cfg = None
    return cfg


def build_multiscale_model(model_cfg: dict,
                           checkpoint: str,
                           scales: Sequence[float],
                           return_scales: bool = False,
                           device: str = 'cpu',
                           fusion: Optional[str] = 'mean'
                           ) -> Tuple[HMSAEncoderDecoder, dict]:
    """Build a config's model for multi-scale inference and load weights.

    Args:
        model_cfg (dict): The ``model`` section of a config (HMSA or a stock
            ``EncoderDecoder``, see :func:`as_multiscale_model_cfg`).
        checkpoint (str): Checkpoint to load.
        scales (Sequence[float]): Inference scales (``test_cfg.scales``).
        return_scales (bool): Whether predictions carry per-scale outputs.
        device (str): Where the model runs.
        fusion (str, optional): ``test_cfg.fusion``, checked by the model
            when it is built; None: the model's default (``attention`` if
            the head has an attention branch, else ``mean``). Defaults to
            ``mean`` (every head supports it).

    Returns:
        tuple: The model, in eval mode on ``device``, and the loaded
        checkpoint.
    """
    from mmengine.runner import load_checkpoint
    from mmseg.registry import MODELS
    cfg = as_multiscale_model_cfg(model_cfg)
    cfg.test_cfg = dict(
        cfg.get('test_cfg') or {},
        scales=list(scales),
        fusion=fusion,
        return_scales=return_scales)
    model = MODELS.build(cfg)
    loaded = load_checkpoint(model, checkpoint, map_location='cpu')
    return model.to(device).eval(), loaded


def describe_model(model_cfg: dict) -> Tuple[str, str]:
    """Names of the trunk and head of a model config, for result tables.

    Args:
        model_cfg (dict): The ``model`` section of a config.

    Returns:
        tuple[str, str]: e.g. ``('MobileNetV2', 'DeepLabV3+')`` or
        ``('ResNetV1c-50', 'DeepLabV3+')``.
    """
    backbone = model_cfg.get('backbone', {}) or {}
    trunk = str(backbone.get('type', 'unknown'))
    if 'depth' in backbone:
        trunk = f'{trunk}-{backbone["depth"]}'
    head = model_cfg.get('decode_head') or {}
    if isinstance(head, (list, tuple)):  # a cascade: its final head
        head = head[-1] if head else {}
    head_type = str(head.get('type', '?'))
    return trunk, HEAD_NAMES.get(head_type, head_type)


def has_cityscapes_classes(classes: Sequence[str]) -> bool:
    """Whether category metrics can be computed for these class names."""
    try:
        CityscapesCategoryMetric().category_indices(classes)
    except ValueError:
        return False
    return True


def has_attention_weights(checkpoint: dict) -> bool:
    """Whether a loaded checkpoint holds attention-branch weights.

    Args:
        checkpoint (dict): What ``mmengine.runner.load_checkpoint`` returns
            (with or without a ``state_dict`` entry).

    Returns:
        bool: True if some key lies under ``decode_head.attention.`` (or,
        for a cascade, ``decode_head.<i>.attention.``).
    """
    state = checkpoint.get('state_dict', checkpoint)
    return any(
        re.match(r'(.*\.)?decode_head\.([0-9]+\.)?attention\.', str(k))
        for k in state)


def predict_rows(model: HMSAEncoderDecoder, inputs: Tensor,
                 data_samples: List[SegDataSample],
                 specs: Sequence[RowSpec]) -> Dict[RowSpec, List[Tensor]]:
    """Predictions of every row for one batch, from one pass per scale.

    Args:
        model (HMSAEncoderDecoder): The segmentor, in eval mode.
        inputs (Tensor): Preprocessed images (N, 3, H, W).
        data_samples (list[SegDataSample]): Their data samples (metainfo).
        specs (Sequence[RowSpec]): The rows to predict.

    Returns:
        dict[RowSpec, list[Tensor]]: For each row, one (1, H, W) label map
        per image at its original size, as ``pred_sem_seg`` would hold.
        The ``oracle`` row needs ``gt_sem_seg`` on the data samples.
    """
    metas = [s.metainfo for s in data_samples]
    # one pass per scale; every row is fused from the same outputs
    outputs = model.forward_scales(
        inputs, sorted({s for spec in specs for s in spec.scales}))
    size = model.output_size(inputs, metas)
    align = model.align_corners

    def predict(logits: Tensor) -> List[Tensor]:
        logits = resize_to(logits, size, align)
        samples = [SegDataSample(metainfo=m) for m in metas]
        samples = model.postprocess_result(logits, samples)
        return [s.pred_sem_seg.data for s in samples]

    singles = {}

    def single(scale: float) -> List[Tensor]:
        if scale not in singles:
            singles[scale] = predict(outputs[scale].logits)
        return singles[scale]

    preds = {}
    for spec in specs:
        if spec.fusion == 'single':
            preds[spec] = single(spec.scales[0])
        elif spec.fusion == 'oracle':
            if not all('gt_sem_seg' in s for s in data_samples):
                raise ValueError('the oracle row needs the ground truth '
                                 '(gt_sem_seg) of every image')
            preds[spec] = [
                oracle_prediction([single(s)[i] for s in spec.scales],
                                  sample.gt_sem_seg.data,
                                  single(1.0)[i])
                for i, sample in enumerate(data_samples)
            ]
        else:
            preds[spec] = predict(
                model.fuse_outputs({s: outputs[s]
                                    for s in spec.scales}, spec.fusion))
    return preds


def evaluate_rows(model: HMSAEncoderDecoder,
                  dataloader: Iterable[dict],
                  specs: Sequence[RowSpec],
                  dataset_meta: dict,
                  metric_cfg: Optional[dict] = None,
                  progress: Optional[Callable[[int], None]] = None
                  ) -> List[RowResult]:
    """Evaluate every row over a dataloader in a single pass.

    Args:
        model (HMSAEncoderDecoder): The segmentor, in eval mode.
        dataloader (Iterable[dict]): Yields MMSeg test batches
            (``inputs``, ``data_samples`` with ``gt_sem_seg``).
        specs (Sequence[RowSpec]): The rows.
        dataset_meta (dict): ``classes`` (and ``palette``) of the dataset.
        metric_cfg (dict, optional): Extra arguments of
            :class:`CityscapesCategoryMetric` (e.g. ``ignore_index``).
        progress (callable, optional): Called with the batch size after
            each batch.

    Returns:
        list[RowResult]: One result per row, in ``specs`` order.
    """
    specs = list(specs)
    metric_cfg = dict(metric_cfg or {})
    if not has_cityscapes_classes(dataset_meta['classes']):
        metric_cfg.setdefault('categories', {})
    metric_cfg.setdefault('per_class', True)
    metrics = {}
    for spec in specs:
        metric = CityscapesCategoryMetric(**metric_cfg)
        metric.dataset_meta = dataset_meta
        metrics[spec] = metric
    model.eval()
    with torch.no_grad():
        for batch in dataloader:
            data = model.data_preprocessor(batch, False)
            samples = data['data_samples']
            preds = predict_rows(model, data['inputs'], samples, specs)
            for spec, pred in preds.items():
                metrics[spec].process(batch, [
                    dict(
                        pred_sem_seg=dict(data=p),
                        gt_sem_seg=dict(data=s.gt_sem_seg.data),
                        img_path=s.metainfo.get('img_path', ''))
                    for p, s in zip(pred, samples)
                ])
            if progress is not None:
                progress(len(samples))
    results = []
    for spec in specs:
        metric = metrics[spec]
        if not metric.results:
            raise ValueError('the dataloader gave no images to evaluate')
        values = _compute_quietly(metric)
        results.append(RowResult(spec=spec, metrics=values))
    return results


def _compute_quietly(metric: CityscapesCategoryMetric) -> Dict[str, float]:
    """Metrics without the per-class tables MMSeg logs for each row."""
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        return dict(metric.compute_metrics(metric.results))
    finally:
        logger.setLevel(level)
