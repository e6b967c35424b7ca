"""Checked loading transforms: stock results, errors that name the file."""
import glob
import os.path as osp

import cv2
import numpy as np
import pytest
from mmengine.registry import init_default_scope
from mmseg.registry import TRANSFORMS

from projects.hmsa.datasets import DatasetError, use_checked_loaders
from projects.hmsa_tools.datasets.demo_data import make_demo_dataset


@pytest.fixture
def pair(tmp_path):
    root = str(tmp_path)
    make_demo_dataset(
        root, num_train=1, num_val=1, height=32, width=64, verbose=False)
    img = glob.glob(osp.join(root, 'leftImg8bit', 'train', '*', '*.png'))[0]
    seg = glob.glob(osp.join(root, 'gtFine', 'train', '*', '*.png'))[0]
    return img, seg


def results(img, seg):
    return dict(
        img_path=img,
        seg_map_path=seg,
        reduce_zero_label=False,
        seg_fields=[])


def load(pipeline, img, seg):
    init_default_scope('mmseg')
    out = results(img, seg)
    for cfg in pipeline:
        out = TRANSFORMS.build(cfg)(out)
    return out


def test_same_results_as_stock_loaders(pair):
    stock = load([dict(type='LoadImageFromFile'),
                  dict(type='LoadAnnotations')], *pair)
    checked = load([
        dict(type='CheckedLoadImageFromFile'),
        dict(type='CheckedLoadAnnotations')
    ], *pair)
    assert np.array_equal(stock['img'], checked['img'])
    assert np.array_equal(stock['gt_seg_map'], checked['gt_seg_map'])
    assert checked['gt_seg_map'].shape == (32, 64)


def truncate(path):
    with open(path, 'rb') as f:
        data = f.read()
    with open(path, 'wb') as f:
        f.write(data[:len(data) // 2])


def test_truncated_image_is_named(pair):
    img, seg = pair
    truncate(img)
    with pytest.raises(DatasetError, match=f'cannot read image {img}'):
        load([dict(type='CheckedLoadImageFromFile')], img, seg)


def test_truncated_label_is_named(pair):
    img, seg = pair
    truncate(seg)
    with pytest.raises(DatasetError, match=f'cannot read label map {seg}'):
        load([
            dict(type='CheckedLoadImageFromFile'),
            dict(type='CheckedLoadAnnotations')
        ], img, seg)


def test_label_size_mismatch_is_named(pair):
    img, seg = pair
    cv2.imwrite(seg, np.zeros((32, 32), np.uint8))
    with pytest.raises(DatasetError) as info:
        load([
            dict(type='CheckedLoadImageFromFile'),
            dict(type='CheckedLoadAnnotations')
        ], img, seg)
    assert f'label map {seg} is 32x32 but its image {img} is 32x64' in str(
        info.value)


def test_use_checked_loaders_walks_nested_configs():
    cfg = dict(
        dataset=dict(
            type='RepeatDataset',
            dataset=dict(pipeline=[
                dict(type='LoadImageFromFile', backend_args=None),
                dict(
                    type='TestTimeAug',
                    transforms=[[dict(type='Resize', scale_factor=1.0)],
                                [dict(type='LoadAnnotations')]])
            ])))
    assert use_checked_loaders(cfg) == 2
    pipeline = cfg['dataset']['dataset']['pipeline']
    assert pipeline[0] == dict(
        type='CheckedLoadImageFromFile', backend_args=None)
    assert pipeline[1]['transforms'][1][0]['type'] == 'CheckedLoadAnnotations'
    assert pipeline[1]['transforms'][0][0]['type'] == 'Resize'
    assert use_checked_loaders(cfg) == 0
