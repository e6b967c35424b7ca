"""CityscapesCategoryMetric against hand-computed confusions."""
import math

import numpy as np
import pytest
import torch
from mmseg.datasets import CityscapesDataset
from mmseg.evaluation.metrics import IoUMetric
from mmseg.registry import METRICS

from projects.hmsa.evaluation import (
    CityscapesCategoryMetric,
    confusion_matrix,
    merge_confusion,
)

CLASSES = CityscapesDataset.METAINFO['classes']
ID = {name: i for i, name in enumerate(CLASSES)}


def _sample(pred, label):
    return dict(
        pred_sem_seg=dict(data=torch.tensor(pred).reshape(1, 1, -1)),
        gt_sem_seg=dict(data=torch.tensor(label).reshape(1, 1, -1)))


def _evaluate(metric, pairs):
    metric.dataset_meta = dict(classes=CLASSES)
    for pred, label in pairs:
        metric.process({}, [_sample(pred, label)])
    return metric.compute_metrics(metric.results)


# Eight pixels, one of them ignored (255) although predicted as "car".
GT = ['road', 'road', 'sidewalk', 'car', 'truck', 'person', 'sky', 255]
PRED = ['road', 'sidewalk', 'sidewalk', 'truck', 'truck', 'rider',
        'building', 'car']


def _ids(names):
    return [ID[n] if isinstance(n, str) else n for n in names]


def test_registered():
    metric = METRICS.build(dict(type='CityscapesCategoryMetric'))
    assert isinstance(metric, CityscapesCategoryMetric)
    assert isinstance(metric, IoUMetric)


def test_category_iou_by_hand():
    m = _evaluate(CityscapesCategoryMetric(), [(_ids(PRED), _ids(GT))])
    # Merged at pixel level, over the 7 labelled pixels:
    # flat: gt {road, road, sidewalk} = pred {road, sidewalk, sidewalk}
    #   positions -> I=3, U=3; vehicle: car->truck, truck->truck: I=2, U=2;
    # human: person->rider: I=1, U=1; sky: gt 1 pixel, never predicted:
    # I=0, U=1; construction: predicted once, never in gt: I=0, U=1;
    # object and nature absent from both: NaN, left out of the mean.
    assert m['category_IoU.flat'] == 100.0
    assert m['category_IoU.vehicle'] == 100.0
    assert m['category_IoU.human'] == 100.0
    assert m['category_IoU.sky'] == 0.0
    assert m['category_IoU.construction'] == 0.0
    assert math.isnan(m['category_IoU.object'])
    assert math.isnan(m['category_IoU.nature'])
    assert m['category_mIoU'] == 60.0
    # Class level differs: road I=1 U=2, sidewalk I=1 U=2, car 0/1,
    # truck 1/2, person 0/1, rider 0/1, sky 0/1, building 0/1.
    assert m['mIoU'] == pytest.approx(
        np.mean([.5, .5, 0, .5, 0, 0, 0, 0]) * 100, abs=0.01)
    assert m['aAcc'] == pytest.approx(3 / 7 * 100, abs=0.01)


def test_category_not_mean_of_class_ious():
    # All vehicles confused with each other: every vehicle class IoU is 0,
    # the vehicle category is perfect.
    gt = _ids(['car', 'truck', 'bus', 'train', 'motorcycle', 'bicycle'])
    pred = _ids(['truck', 'bus', 'train', 'motorcycle', 'bicycle', 'car'])
    m = _evaluate(CityscapesCategoryMetric(), [(pred, gt)])
    assert m['mIoU'] == 0.0
    assert m['category_IoU.vehicle'] == 100.0
    assert m['category_mIoU'] == 100.0


def test_accumulates_pixels_over_images():
    first = (_ids(['road', 'road']), _ids(['road', 'sky']))
    second = (_ids(['sky', 'sky', 'sky']), _ids(['sky', 'sky', 'road']))
    m = _evaluate(CityscapesCategoryMetric(), [first, second])
    # flat: gt road x2 (img1 pos0, img2 pos2), pred road x2 (img1 both):
    # I=1, U=3.  sky: gt x3, pred x3, I=2, U=4.
    assert m['category_IoU.flat'] == pytest.approx(100 / 3, abs=0.01)
    assert m['category_IoU.sky'] == 50.0
    assert m['category_mIoU'] == pytest.approx((100 / 3 + 50) / 2, abs=0.01)


def test_class_metrics_match_iou_metric():
    g = torch.Generator().manual_seed(0)
    pairs = []
    for _ in range(3):
        label = torch.randint(0, 19, (500, ), generator=g)
        label[torch.rand(500, generator=g) < 0.1] = 255
        pred = torch.where(
            torch.rand(500, generator=g) < 0.6, label.clamp(max=18),
            torch.randint(0, 19, (500, ), generator=g))
        pairs.append((pred.tolist(), label.tolist()))
    for kwargs in (dict(), dict(iou_metrics=['mIoU', 'mDice', 'mFscore'])):
        ours = _evaluate(CityscapesCategoryMetric(**kwargs), pairs)
        ref = _evaluate(IoUMetric(**kwargs), pairs)
        for key, value in ref.items():
            assert ours[key] == pytest.approx(float(value), abs=1e-6), key
        assert 'category_mIoU' in ours


def test_out_of_range_label_counts_like_iou_metric():
    # A label that is neither a class nor ignore_index: IoUMetric still
    # counts the prediction there; so must we.
    pairs = [([0, 1, 1], [0, 1, 30])]
    ours = _evaluate(CityscapesCategoryMetric(), pairs)
    ref = _evaluate(IoUMetric(), pairs)
    assert ours['mIoU'] == pytest.approx(float(ref['mIoU']))
    assert ours['aAcc'] == pytest.approx(float(ref['aAcc']))


def test_confusion_and_merge():
    conf = confusion_matrix(
        torch.tensor([0, 1, 2, 2]), torch.tensor([0, 2, 2, 255]), 3, 255)
    assert conf.shape == (4, 4)
    expected = torch.zeros(4, 4, dtype=torch.long)
    expected[0, 0] = 1
    expected[2, 1] = 1
    expected[2, 2] = 1
    assert torch.equal(conf, expected)
    merged = merge_confusion(conf, [[0], [1, 2]])
    assert merged.tolist() == [[1, 0, 0], [0, 2, 0], [0, 0, 0]]


def test_missing_class_names_raise():
    metric = CityscapesCategoryMetric()
    metric.dataset_meta = dict(classes=('a', 'b'))
    metric.process({}, [_sample([0, 1], [0, 1])])
    with pytest.raises(ValueError, match='category .* not in the dataset'):
        metric.compute_metrics(metric.results)


def test_custom_and_empty_categories():
    pairs = [(_ids(['road', 'car']), _ids(['road', 'truck']))]
    m = _evaluate(
        CityscapesCategoryMetric(categories=dict(wheels=['car', 'truck'])),
        pairs)
    assert m['category_IoU.wheels'] == 100.0
    assert m['category_mIoU'] == 100.0
    m = _evaluate(CityscapesCategoryMetric(categories={}), pairs)
    assert not any(k.startswith('category') for k in m)
    assert {'aAcc', 'mIoU', 'mAcc'} <= set(m)


def test_evaluate_through_mmengine(tmp_path):
    # The path a Runner takes: process() per batch, then evaluate(size).
    metric = METRICS.build(
        dict(type='CityscapesCategoryMetric', output_dir=str(tmp_path)))
    metric.dataset_meta = dict(classes=CLASSES)
    sample = _sample(_ids(PRED), _ids(GT))
    sample['img_path'] = 'x/frame_leftImg8bit.png'
    metric.process({}, [sample])
    out = metric.evaluate(1)
    assert out['category_mIoU'] == 60.0
    assert (tmp_path / 'frame_leftImg8bit.png').exists()
