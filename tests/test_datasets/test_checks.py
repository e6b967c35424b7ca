"""Pre-flight dataset checks: each bad input gets a message naming it."""
import glob
import os
import os.path as osp

import cv2
import numpy as np
import pytest

from projects.hmsa_tools.datasets import (
    DatasetError,
    check_split,
    leaf_datasets,
)
from projects.hmsa_tools.datasets.demo_data import make_demo_dataset

LOADERS = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations')]


def city_cfg(root: str, split: str = 'train', pipeline=None) -> dict:
    return dict(
        type='CityscapesDataset',
        data_root=root,
        data_prefix=dict(
            img_path=f'leftImg8bit/{split}', seg_map_path=f'gtFine/{split}'),
        pipeline=LOADERS if pipeline is None else pipeline)


@pytest.fixture
def data(tmp_path) -> str:
    root = str(tmp_path / 'cityscapes')
    make_demo_dataset(
        root, num_train=3, num_val=1, height=32, width=64, verbose=False)
    return root


def files(root: str, pattern: str):
    return sorted(glob.glob(osp.join(root, '**', pattern), recursive=True))


def test_good_split_passes(data):
    assert check_split(city_cfg(data), 'train') == 3
    assert check_split(city_cfg(data, 'val'), 'val') == 1


def test_missing_cityscapes_says_where_and_how(tmp_path):
    root = str(tmp_path / 'data' / 'cityscapes')
    with pytest.raises(DatasetError) as info:
        check_split(city_cfg(root + '/'), 'train')
    msg = str(info.value)
    assert osp.join(root, 'leftImg8bit', 'train') in msg
    assert 'ln -s /path/to/cityscapes' in msg
    assert 'labelTrainIds' in msg
    assert 'cityscapes.py' in msg and 'cityscapesscripts' in msg


def test_missing_demo_data_points_at_its_generator(tmp_path):
    root = str(tmp_path / 'work_dirs' / 'demo' / 'data')
    with pytest.raises(DatasetError) as info:
        check_split(city_cfg(root + '/'), 'val')
    msg = str(info.value)
    assert f'python tools/make_demo_data.py --out {root}' in msg
    assert 'ln -s /path/to/cityscapes' not in msg


def test_unconverted_cityscapes_labels(data):
    for path in files(data, '*_gtFine_labelTrainIds.png'):
        os.rename(path, path.replace('labelTrainIds', 'labelIds'))
    with pytest.raises(DatasetError) as info:
        check_split(city_cfg(data), 'train')
    msg = str(info.value)
    assert 'not converted' in msg
    assert '_gtFine_labelTrainIds.png' in msg
    assert 'dataset_converters' in msg and 'cityscapes.py' in msg


def test_empty_split(data):
    for path in files(osp.join(data, 'leftImg8bit', 'train'), '*.png'):
        os.remove(path)
    with pytest.raises(DatasetError) as info:
        check_split(city_cfg(data), 'train')
    msg = str(info.value)
    assert 'empty' in msg
    assert '_leftImg8bit.png' in msg
    assert osp.join(data, 'leftImg8bit', 'train') in msg


def test_corrupt_image_is_named(data):
    bad = files(data, '*_leftImg8bit.png')[1]
    with open(bad, 'wb') as f:
        f.write(b'this is not a png')
    with pytest.raises(DatasetError) as info:
        check_split(city_cfg(data), 'train')
    assert f'cannot read image {bad}' in str(info.value)


def test_label_size_mismatch_is_named(data):
    label = files(data, '*_gtFine_labelTrainIds.png')[0]
    cv2.imwrite(label, np.zeros((16, 64), np.uint8))
    with pytest.raises(DatasetError) as info:
        check_split(city_cfg(data), 'train')
    msg = str(info.value)
    assert f'label map {label} is 16x64' in msg
    assert 'is 32x64' in msg


def test_colour_label_map_is_refused(data):
    label = files(data, '*_gtFine_labelTrainIds.png')[0]
    cv2.imwrite(label, np.zeros((32, 64, 3), np.uint8))
    with pytest.raises(DatasetError, match='3 channels'):
        check_split(city_cfg(data), 'train')


def test_some_labels_missing_generic_dataset(data):
    missing = files(data, '*_gtFine_labelTrainIds.png')[2]
    os.remove(missing)
    cfg = city_cfg(data)
    cfg['type'] = 'BaseSegDataset'
    cfg.update(
        img_suffix='_leftImg8bit.png',
        seg_map_suffix='_gtFine_labelTrainIds.png')
    with pytest.raises(DatasetError) as info:
        check_split(cfg, 'train')
    msg = str(info.value)
    assert '1 of 3 train images have no label map' in msg
    assert missing in msg


def test_labels_not_needed_without_label_loading(data):
    for path in files(data, '*_gtFine_labelTrainIds.png'):
        os.remove(path)
    pipeline = [dict(type='LoadImageFromFile')]
    assert check_split(city_cfg(data, pipeline=pipeline), 'test') == 3


def test_wrappers_are_looked_through(data):
    inner = city_cfg(data)
    wrapped = dict(
        type='ConcatDataset',
        datasets=[dict(type='RepeatDataset', times=2, dataset=inner), inner])
    assert list(leaf_datasets(wrapped)) == [inner, inner]
    assert check_split(wrapped, 'train') == 6
    os.remove(files(data, '*_leftImg8bit.png')[0])
    os.remove(files(data, '*_leftImg8bit.png')[0])
    os.remove(files(data, '*_leftImg8bit.png')[0])
    with pytest.raises(DatasetError, match='empty'):
        check_split(wrapped, 'train')


def test_remote_storage_is_not_checked(tmp_path):
    cfg = city_cfg('s3://bucket/cityscapes/')
    assert check_split(cfg, 'train') == 0
