"""ScalePictures: per-scale pictures of image files with a config's model."""
import shutil

import mmcv
import pytest
from mmengine.config import Config
from mmseg.datasets import ADE20KDataset, CityscapesDataset

from projects.hmsa_tools.visualization import (
    ScalePictures,
    cityscapes_label_path,
)
from projects.hmsa_tools.visualization.scale_pictures import class_meta
from tests.utils import tiny_eval_files, tiny_model_cfg


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    return tiny_eval_files(tmp_path_factory.mktemp('scale_pictures'))


def test_cityscapes_label_path(tiny, tmp_path):
    image = tiny['images'][0]
    label = cityscapes_label_path(image)
    assert label == image.replace('/leftImg8bit/', '/gtFine/').replace(
        '_leftImg8bit.png', '_gtFine_labelTrainIds.png')
    # no label file, not a Cityscapes name, not in a leftImg8bit folder
    copy = tmp_path / 'leftImg8bit' / 'val' / 'x' / 'x_leftImg8bit.png'
    copy.parent.mkdir(parents=True)
    shutil.copy(image, copy)
    assert cityscapes_label_path(str(copy)) is None
    assert cityscapes_label_path(image.replace('_leftImg8bit', '')) is None
    shutil.copy(image, tmp_path / 'x_leftImg8bit.png')
    assert cityscapes_label_path(str(tmp_path / 'x_leftImg8bit.png')) is None


def test_class_meta(tiny):
    cfg = Config.fromfile(tiny['config'])
    own = dict(classes=('a', 'b'), palette=[[1, 2, 3], [4, 5, 6]])
    assert class_meta(cfg, dict(meta=dict(dataset_meta=own))) == own
    # without a checkpoint meta: the test dataset's classes
    assert class_meta(cfg, {})['classes'] == \
        CityscapesDataset.METAINFO['classes']
    cfg.test_dataloader.dataset.type = 'ADE20KDataset'
    assert class_meta(cfg, {})['palette'] == ADE20KDataset.METAINFO['palette']


def test_draws_with_and_without_ground_truth(tiny, tmp_path):
    pictures = ScalePictures(Config.fromfile(tiny['config']),
                             tiny['checkpoint'], [0.5, 1.0],
                             panel_width=64)
    assert pictures.model.test_cfg.fusion == 'attention'
    with_gt = tmp_path / 'with_gt.png'
    assert pictures.draw(tiny['images'][0], str(with_gt)) is True
    alone = tmp_path / 'alone.png'
    shutil.copy(tiny['images'][0], alone)
    without_gt = tmp_path / 'without_gt.png'
    assert pictures.draw(str(alone), str(without_gt)) is False
    # the ground truth panel makes the first row one panel longer (two
    # scales: two panels in the other rows)
    assert mmcv.imread(str(with_gt)).shape[1] > \
        mmcv.imread(str(without_gt)).shape[1]
    stock = tiny_eval_files(tmp_path, tiny_model_cfg(hmsa=False), 'stock')
    pictures = ScalePictures(Config.fromfile(stock['config']),
                             stock['checkpoint'], [0.5, 1.0])
    assert pictures.model.test_cfg.fusion == 'mean'
