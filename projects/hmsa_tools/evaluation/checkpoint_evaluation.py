"""One checkpoint on a config's test set at every scale and fusion rule.

:class:`CheckpointEvaluation` builds the test dataloader (after checking
the data), the model for multi-scale inference and the rows of
:func:`.scale_evaluation.row_specs`; :meth:`CheckpointEvaluation.run` makes
one pass (one network pass per image and scale) and returns what
``results.json`` holds (:func:`.results_table.write_results` writes it).
"""
import copy
import time
from typing import Callable, Dict, List, Optional, Sequence

import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from torch.utils.data import DataLoader

from projects.hmsa.datasets import DatasetError, use_checked_loaders

from ..datasets import check_dataloader
from .results_table import format_scales, to_records
from .scale_evaluation import (
    build_multiscale_model,
    describe_model,
    evaluate_rows,
    has_attention_weights,
    has_cityscapes_classes,
    row_specs,
)


def build_test_dataloader(cfg: Config,
                          num_workers: Optional[int] = None) -> DataLoader:
    """The config's test dataloader, its data checked before it is built.

    The loaders that name a damaged file are swapped in, as for
    ``tools/test.py``.

    Args:
        cfg (Config): The config (``test_dataloader`` is used, not changed).
        num_workers (int, optional): Override of the worker count.

    Returns:
        DataLoader: The test dataloader.

    Raises:
        DatasetError: The config has no test dataloader, or its data is
            missing, empty or unreadable (:func:`check_dataloader`).
    """
    if not cfg.get('test_dataloader'):
        raise DatasetError(f'{cfg.filename} has no test_dataloader')
    loader_cfg = copy.deepcopy(cfg.test_dataloader)
    use_checked_loaders(loader_cfg)
    check_dataloader(loader_cfg, 'test')
    if num_workers is not None:
        loader_cfg.num_workers = num_workers
    if loader_cfg.get('num_workers', 0) == 0:
        loader_cfg.persistent_workers = False
    return Runner.build_dataloader(loader_cfg)


class CheckpointEvaluation:
    """Evaluate a checkpoint at each single scale and with every rule.

    The rows are each scale alone, ``mean`` and ``max`` fusion, with an
    attention branch hierarchical ``attention`` fusion (and ``explicit``
    fusion, see ``explicit``), and the ``oracle``. A stock single-scale
    ``EncoderDecoder`` config gives the single, ``mean``, ``max`` and
    ``oracle`` rows.

    Args:
        cfg (Config): A config with ``model`` and ``test_dataloader``; the
            ``ignore_index`` of its ``test_evaluator`` is used.
        checkpoint (str): The checkpoint to evaluate.
        scales (Sequence[float]): The inference scales; they include 1.
        explicit (bool): Add the ``explicit`` row. A model trained with
            ``train_cfg.fusion='explicit'`` gets it anyway. Defaults to
            False.
        device (str, optional): Where the model runs. Defaults to ``cuda``
            when available, else ``cpu``.
        num_workers (int, optional): Dataloader workers. Defaults to the
            config's.

    Raises:
        DatasetError: The test data cannot be used.
        ValueError: A setting the model refuses when it is built, or
            ``explicit`` for an attention branch that reads the higher
            scales' prediction (it gives no score per scale).
    """

    def __init__(self,
                 cfg: Config,
                 checkpoint: str,
                 scales: Sequence[float],
                 explicit: bool = False,
                 device: Optional[str] = None,
                 num_workers: Optional[int] = None) -> None:
        init_default_scope(cfg.get('default_scope', 'mmseg'))
        self.cfg = cfg
        self.checkpoint = checkpoint
        self.scales = list(scales)
        self.loader = build_test_dataloader(cfg, num_workers)
        self.device = device or ('cuda'
                                 if torch.cuda.is_available() else 'cpu')
        self.model, loaded = build_multiscale_model(
            cfg.model, checkpoint, self.scales, False, self.device)
        self.attention_trained = has_attention_weights(loaded)
        explicit = explicit or (cfg.model.get('train_cfg')
                                or {}).get('fusion') == 'explicit'
        if explicit and self.model.attention_reads_higher:
            raise ValueError(
                'explicit fusion needs an attention score per scale; this '
                'attention branch reads the higher scales\' prediction')
        self.specs = row_specs(self.scales, self.model.with_attention,
                               explicit)

    @property
    def num_images(self) -> int:
        """The number of test images."""
        return len(self.loader.dataset)

    def describe(self) -> str:
        """What :meth:`run` will do, in one line."""
        return (f'Evaluating {self.checkpoint} on {self.num_images} images '
                f'at scales {format_scales(self.scales)} ({len(self.specs)} '
                'rows, one network pass per image and scale, device '
                f'{self.device})')

    def run(self,
            progress: Optional[Callable[[int], None]] = None,
            trunk: Optional[str] = None,
            head: Optional[str] = None) -> Dict:
        """Evaluate every row in one pass over the test set.

        Args:
            progress (callable, optional): Called with the number of images
                after each batch.
            trunk (str, optional): Trunk name of the table. Defaults to the
                backbone's type (and depth).
            head (str, optional): Head name of the table. Defaults to the
                architecture of the decode head (e.g. ``DeepLabV3+``).

        Returns:
            dict: What ``results.json`` holds: ``config``, ``checkpoint``,
            ``scales``, ``num_images``, ``device``, ``seconds``,
            ``attention_trained`` (None without an attention branch),
            ``rows`` (:func:`.results_table.to_records`) and ``notes``.
        """
        metric_cfg = {}
        evaluator = self.cfg.get('test_evaluator')
        if isinstance(evaluator, dict) and 'ignore_index' in evaluator:
            metric_cfg['ignore_index'] = evaluator['ignore_index']
        dataset_meta = self.loader.dataset.metainfo
        start = time.time()
        results = evaluate_rows(self.model, self.loader, self.specs,
                                dataset_meta, metric_cfg, progress)
        elapsed = time.time() - start
        default_trunk, default_head = describe_model(self.cfg.model)
        with_attention = self.model.with_attention
        return dict(
            config=self.cfg.filename,
            checkpoint=self.checkpoint,
            scales=self.scales,
            num_images=self.num_images,
            device=self.device,
            seconds=round(elapsed, 2),
            attention_trained=self.attention_trained
            if with_attention else None,
            rows=to_records(results, trunk or default_trunk, head
                            or default_head),
            notes=self._notes(dataset_meta['classes']))

    def _notes(self, classes: Sequence[str]) -> List[str]:
        """The lines that follow the table."""
        notes = [
            f'Config: `{self.cfg.filename}`; checkpoint: '
            f'`{self.checkpoint}`; {self.num_images} test images; every row '
            'comes from the same per-scale outputs (one network pass per '
            'image and scale).'
        ]
        if not has_cityscapes_classes(classes):
            notes.append('The dataset lacks the Cityscapes classes: no '
                         'category columns.')
        if self.model.with_attention and not self.attention_trained:
            notes.append('The checkpoint has no attention-branch weights: '
                         'the attention row uses the untrained branch.')
        return notes
