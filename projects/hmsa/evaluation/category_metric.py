"""IoU metric that also reports Cityscapes category-level scores.

Cityscapes groups its 19 training classes into 7 categories (flat, human,
vehicle, construction, object, nature, sky). The category IoU is computed on
pixel counts after merging the classes of a category, i.e. a *car* predicted
as *truck* is a hit for *vehicle*. It is therefore not the mean of the class
IoUs of a category.
"""
import os.path as osp
from collections import OrderedDict
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.logging import MMLogger, print_log
from mmseg.evaluation.metrics import IoUMetric
from mmseg.registry import METRICS
from PIL import Image
from prettytable import PrettyTable

#: Cityscapes categories, from the class names of the 19 training ids.
CITYSCAPES_CATEGORIES: Dict[str, Tuple[str, ...]] = OrderedDict(
    flat=('road', 'sidewalk'),
    human=('person', 'rider'),
    vehicle=('car', 'truck', 'bus', 'train', 'motorcycle', 'bicycle'),
    construction=('building', 'wall', 'fence'),
    object=('pole', 'traffic light', 'traffic sign'),
    nature=('vegetation', 'terrain'),
    sky=('sky', ),
)


def confusion_matrix(pred: torch.Tensor, label: torch.Tensor,
                     num_classes: int, ignore_index: int) -> torch.Tensor:
    """Pixel confusion matrix of one prediction against its ground truth.

    Pixels whose label is ``ignore_index`` are dropped. Labels or predictions
    outside ``[0, num_classes)`` are counted in an extra last row/column so
    that the per-class areas match :class:`IoUMetric` exactly.

    Args:
        pred (torch.Tensor): Predicted class indices, any shape.
        label (torch.Tensor): Ground-truth class indices, same shape.
        num_classes (int): Number of classes.
        ignore_index (int): Label value excluded from evaluation.

    Returns:
        torch.Tensor: ``(num_classes + 1, num_classes + 1)`` int64 matrix on
        the CPU; entry ``[g, p]`` counts pixels of label ``g`` predicted
        as ``p``.
    """
    pred = pred.reshape(-1).long()
    label = label.reshape(-1).to(pred.device).long()
    keep = label != ignore_index
    pred, label = pred[keep], label[keep]
    other = num_classes
    pred = torch.where((pred >= 0) & (pred < num_classes), pred,
                       torch.full_like(pred, other))
    label = torch.where((label >= 0) & (label < num_classes), label,
                        torch.full_like(label, other))
    size = num_classes + 1
    counts = torch.bincount(label * size + pred, minlength=size * size)
    return counts.reshape(size, size).cpu()


def merge_confusion(confusion: torch.Tensor,
                    groups: Sequence[Sequence[int]]) -> torch.Tensor:
    """Merge the classes of a confusion matrix into groups.

    Args:
        confusion (torch.Tensor): ``(C + 1, C + 1)`` matrix from
            :func:`confusion_matrix` (last row/column: out of range).
        groups (Sequence[Sequence[int]]): Class indices of each group. A
            class in no group is treated as out of range.

    Returns:
        torch.Tensor: ``(G + 1, G + 1)`` matrix over the groups, the last
        row/column collecting every class that belongs to no group.
    """
    num_classes = confusion.shape[0] - 1
    num_groups = len(groups)
    assign = torch.zeros(num_classes + 1, num_groups + 1,
                         dtype=confusion.dtype)
    assign[:, num_groups] = 1
    for g, members in enumerate(groups):
        for c in members:
            assign[c, num_groups] = 0
            assign[c, g] = 1
    return assign.T @ confusion @ assign


def areas_from_confusion(
    confusion: torch.Tensor
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Intersection, union, predicted and label areas of each class.

    Args:
        confusion (torch.Tensor): ``(C + 1, C + 1)`` confusion matrix whose
            last row/column counts out-of-range labels/predictions.

    Returns:
        tuple[torch.Tensor]: Four float64 tensors of length ``C``, the same
        quantities :meth:`IoUMetric.intersect_and_union` returns.
    """
    n = confusion.shape[0] - 1
    conf = confusion.double()
    intersect = torch.diagonal(conf)[:n]
    area_pred = conf[:, :n].sum(dim=0)
    area_label = conf[:n, :].sum(dim=1)
    union = area_pred + area_label - intersect
    return intersect, union, area_pred, area_label


@METRICS.register_module()
class CityscapesCategoryMetric(IoUMetric):
    """:class:`IoUMetric` plus Cityscapes category-level IoU.

    Besides what :class:`IoUMetric` reports (``aAcc``, ``mIoU``, ``mAcc``,
    ...), it returns ``category_mIoU`` and one ``category_IoU.<name>`` per
    category. Category scores are computed from pixel counts after merging
    the classes of each category in the confusion matrix (the Cityscapes
    benchmark's definition), not by averaging class IoUs.

    Use it from any config:
    ``val_evaluator = dict(type='CityscapesCategoryMetric')``.

    Args:
        categories (Mapping[str, Sequence[str]], optional): Category name to
            the names of its classes (as in ``dataset_meta['classes']``).
            None (default) means the 7 Cityscapes categories; an empty
            mapping reports only what :class:`IoUMetric` reports.
        per_class (bool): Also return each class's IoU as
            ``IoU.<class>``. Defaults to False.
        **kwargs: Arguments of :class:`IoUMetric` (``ignore_index``,
            ``iou_metrics``, ``nan_to_num``, ``output_dir``, ...).
    """

    def __init__(self,
                 categories: Optional[Mapping[str, Sequence[str]]] = None,
                 per_class: bool = False,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.per_class = bool(per_class)
        if categories is None:
            categories = CITYSCAPES_CATEGORIES
        self.categories: Dict[str, Tuple[str, ...]] = OrderedDict(
            (name, tuple(members)) for name, members in categories.items())

    def category_indices(self, classes: Sequence[str]) -> List[List[int]]:
        """Class indices of each category, resolved by class name.

        Args:
            classes (Sequence[str]): Class names of the dataset, in label
                order.

        Returns:
            list[list[int]]: For each category (in order), its class indices.

        Raises:
            ValueError: If a category names a class the dataset lacks.
        """
        lookup = {name: i for i, name in enumerate(classes)}
        groups = []
        for category, members in self.categories.items():
            missing = [m for m in members if m not in lookup]
            if missing:
                raise ValueError(
                    f'category {category!r} names classes {missing} that '
                    f'are not in the dataset classes {tuple(classes)}; pass '
                    f'`categories` to CityscapesCategoryMetric for this '
                    f'dataset')
            groups.append([lookup[m] for m in members])
        return groups

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Store the pixel confusion matrix of each sample.

        Args:
            data_batch (dict): A batch of data from the dataloader (unused).
            data_samples (Sequence[dict]): Model outputs with
                ``pred_sem_seg`` and (unless ``format_only``) ``gt_sem_seg``.
        """
        num_classes = len(self.dataset_meta['classes'])
        for data_sample in data_samples:
            pred = data_sample['pred_sem_seg']['data'].squeeze()
            if not self.format_only:
                label = data_sample['gt_sem_seg']['data'].squeeze()
                self.results.append(
                    confusion_matrix(pred, label, num_classes,
                                     self.ignore_index))
            if self.output_dir is not None:
                self._save_prediction(data_sample, pred)

    def _save_prediction(self, data_sample: dict, pred: torch.Tensor) -> None:
        """Write a prediction as a label PNG named after its image."""
        stem = osp.splitext(osp.basename(data_sample['img_path']))[0]
        mask = pred.cpu().numpy()
        if data_sample.get('reduce_zero_label', False):
            mask = mask + 1
        Image.fromarray(mask.astype(np.uint8)).save(
            osp.abspath(osp.join(self.output_dir, f'{stem}.png')))

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """Compute class-level and category-level metrics.

        Args:
            results (list): Confusion matrices stored by :meth:`process`.

        Returns:
            dict[str, float]: What :class:`IoUMetric` returns, plus
            ``category_mIoU`` and ``category_IoU.<name>`` (percentages).
        """
        logger: MMLogger = MMLogger.get_current_instance()
        if self.format_only:
            logger.info(f'results are saved to {self.output_dir}')
            return OrderedDict()
        if not results:
            raise ValueError('no results to evaluate')
        total = torch.stack(results).sum(dim=0)
        classes = self.dataset_meta['classes']

        ret = self.total_area_to_metrics(*areas_from_confusion(total),
                                         self.metrics, self.nan_to_num,
                                         self.beta)
        metrics: Dict[str, float] = OrderedDict()
        for key, value in ret.items():
            name = key if key == 'aAcc' else 'm' + key
            metrics[name] = float(np.round(np.nanmean(value) * 100, 2))
        ret.pop('aAcc', None)
        if self.per_class and 'IoU' in ret:
            for name, value in zip(classes, ret['IoU']):
                metrics[f'IoU.{name}'] = float(np.round(value * 100, 2))
        table = PrettyTable()
        table.add_column('Class', list(classes))
        for key, value in ret.items():
            table.add_column(key, np.round(value * 100, 2).tolist())
        print_log('per class results:', logger)
        print_log('\n' + table.get_string(), logger=logger)
        if not self.categories:
            return metrics

        category_iou = self.category_iou(total, classes)
        values = np.array(list(category_iou.values()), dtype=np.float64)
        if self.nan_to_num is not None:
            values = np.nan_to_num(values, nan=self.nan_to_num)
        metrics['category_mIoU'] = float(np.round(np.nanmean(values) * 100,
                                                  2))
        for name, value in zip(category_iou, values):
            metrics[f'category_IoU.{name}'] = float(np.round(value * 100, 2))
        table = PrettyTable()
        table.add_column('Category', list(category_iou))
        table.add_column('IoU', np.round(values * 100, 2).tolist())
        print_log('per category results:', logger)
        print_log('\n' + table.get_string(), logger=logger)
        return metrics

    def category_iou(self, confusion: torch.Tensor,
                     classes: Sequence[str]) -> Dict[str, float]:
        """IoU of each category from a class confusion matrix.

        Args:
            confusion (torch.Tensor): ``(C + 1, C + 1)`` confusion matrix
                from :func:`confusion_matrix`.
            classes (Sequence[str]): Class names in label order.

        Returns:
            dict[str, float]: Category name to IoU in [0, 1] (NaN when the
            category is absent from both prediction and ground truth).
        """
        merged = merge_confusion(confusion, self.category_indices(classes))
        intersect, union, _, _ = areas_from_confusion(merged)
        iou = (intersect / union).numpy()  # 0 / 0 gives NaN
        return OrderedDict(zip(self.categories, iou.tolist()))
