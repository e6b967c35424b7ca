"""The demo dataset (projects.hmsa_tools.datasets.demo_data): layout, labels,
determinism, scale content."""
import filecmp
import glob
import os.path as osp

import cv2
import numpy as np

from projects.hmsa_tools.datasets.demo_data import (
    CLASSES,
    IGNORE,
    POLE,
    SKY,
    TERRAIN,
    VEGETATION,
    make_demo_dataset,
    render_scene,
)


def test_layout_is_cityscapes(tmp_path):
    written = make_demo_dataset(
        str(tmp_path), num_train=3, num_val=2, height=64, width=128,
        verbose=False)
    assert len(written['train']) == 3 and len(written['val']) == 2
    for split, n in (('train', 3), ('val', 2)):
        imgs = sorted(
            glob.glob(str(tmp_path / 'leftImg8bit' / split / '*' /
                          '*_leftImg8bit.png')))
        segs = sorted(
            glob.glob(str(tmp_path / 'gtFine' / split / '*' /
                          '*_gtFine_labelTrainIds.png')))
        assert len(imgs) == len(segs) == n
        for img, seg in zip(imgs, segs):
            assert osp.basename(img).replace('_leftImg8bit', '') == \
                osp.basename(seg).replace('_gtFine_labelTrainIds', '')
            image = cv2.imread(img, cv2.IMREAD_UNCHANGED)
            label = cv2.imread(seg, cv2.IMREAD_UNCHANGED)
            assert image.shape == (64, 128, 3) and label.shape == (64, 128)
            values = set(np.unique(label).tolist())
            assert values <= set(range(len(CLASSES))) | {IGNORE}


def test_same_seed_same_files_other_seed_other_files(tmp_path):
    a, b, c = (str(tmp_path / n) for n in 'abc')
    for root, seed in ((a, 1), (b, 1), (c, 2)):
        make_demo_dataset(
            root, num_train=2, num_val=1, height=32, width=64, seed=seed,
            verbose=False)
    files = [osp.relpath(p, a) for p in glob.glob(a + '/**/*.png',
                                                  recursive=True)]
    assert len(files) == 6
    match, mismatch, errors = filecmp.cmpfiles(a, b, files, shallow=False)
    assert len(match) == 6 and not mismatch and not errors
    match, mismatch, errors = filecmp.cmpfiles(a, c, files, shallow=False)
    assert len(mismatch) == 6


def test_scenes_hold_context_and_thin_structures():
    poles = 0
    for i in range(8):
        img, label = render_scene(np.random.default_rng(i), 128, 256)
        assert img.dtype == np.uint8 and label.dtype == np.uint8
        # Vegetation (above the horizon) and terrain (below it) share one
        # colour distribution: only their surroundings tell them apart.
        veg = img[label == VEGETATION].reshape(-1, 3).astype(float)
        ter = img[label == TERRAIN].reshape(-1, 3).astype(float)
        if len(veg) > 50:
            assert np.abs(veg.mean(0) - ter.mean(0)).max() < 25
            assert np.nonzero(label == VEGETATION)[0].max() < \
                np.nonzero(label == TERRAIN)[0].min()
        assert (label[0] == SKY).any()
        # Poles are one to three pixels wide.
        runs = []
        for row in np.nonzero((label == POLE).any(1))[0]:
            edges = np.flatnonzero(np.diff(np.r_[0, label[row] == POLE, 0]))
            runs.extend(edges[1::2] - edges[::2])
        if runs:
            poles += 1
            assert np.median(runs) <= 3
    assert poles >= 6
