"""The demo dataset (projects.hmsa_tools.datasets.demo_data): layout, labels,
determinism, scale content, and the second scene family."""
import filecmp
import glob
import hashlib
import os.path as osp

import cv2
import numpy as np
import pytest

from projects.hmsa_tools.datasets.demo_data import (
    CAR,
    CLASSES,
    DEFAULT_FAMILY,
    FAMILIES,
    IGNORE,
    PERSON,
    POLE,
    ROAD,
    SKY,
    TERRAIN,
    TRUCK,
    VEGETATION,
    make_demo_dataset,
    render_scene,
)

#: Pixels of ``make_demo_dataset(root, 2, 1, 32, 64, seed=0)``, hashed by
#: :func:`pixel_hash`: the default family's hash was taken before the second
#: family existed (the demo and every number of docs/study.md rest on it),
#: street2's when its study ran.
DEFAULT_TINY_HASH = \
    '3db7776da88539737cc49b106b2004ab0c902919c6095d13aaea52ddee51e6b7'
STREET2_TINY_HASH = \
    '856303187d09ad2242726c1792adccaefe3595be13d5f9218e5e5d4904d48a7c'


def pixel_hash(root: str) -> str:
    """SHA-256 of every PNG's relative path, shape and decoded pixels (not
    of the PNG bytes, which depend on the encoder's version)."""
    digest = hashlib.sha256()
    for path in sorted(glob.glob(osp.join(root, '**', '*.png'),
                                 recursive=True)):
        array = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        digest.update(osp.relpath(path, root).encode())
        digest.update(str(array.shape).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


@pytest.mark.parametrize('family', sorted(FAMILIES))
def test_layout_is_cityscapes(tmp_path, family):
    written = make_demo_dataset(
        str(tmp_path), num_train=3, num_val=2, height=64, width=128,
        verbose=False, family=family)
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


@pytest.mark.parametrize('family', sorted(FAMILIES))
def test_same_seed_same_files_other_seed_other_files(tmp_path, family):
    a, b, c = (str(tmp_path / n) for n in 'abc')
    for root, seed in ((a, 1), (b, 1), (c, 2)):
        make_demo_dataset(
            root, num_train=2, num_val=1, height=32, width=64, seed=seed,
            verbose=False, family=family)
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


@pytest.mark.parametrize('family,expected', [(DEFAULT_FAMILY,
                                              DEFAULT_TINY_HASH),
                                             ('street2', STREET2_TINY_HASH)])
def test_families_give_fixed_pixels(tmp_path, family, expected):
    """The default family is what it was before families existed, with or
    without naming it; street2 is what its study ran on."""
    kwargs = dict(num_train=2, num_val=1, height=32, width=64, seed=0,
                  verbose=False)
    make_demo_dataset(str(tmp_path / 'named'), family=family, **kwargs)
    assert pixel_hash(str(tmp_path / 'named')) == expected
    if family == DEFAULT_FAMILY:
        make_demo_dataset(str(tmp_path / 'plain'), **kwargs)
        assert pixel_hash(str(tmp_path / 'plain')) == expected


def test_families_differ_for_the_same_seed(tmp_path):
    for family in FAMILIES:
        make_demo_dataset(
            str(tmp_path / family), num_train=2, num_val=1, height=32,
            width=64, seed=0, verbose=False, family=family)
    assert pixel_hash(str(tmp_path / 'street')) != pixel_hash(
        str(tmp_path / 'street2'))


def test_unknown_family_is_refused_before_writing(tmp_path):
    with pytest.raises(ValueError, match='unknown data family .street3.'):
        make_demo_dataset(str(tmp_path / 'out'), family='street3',
                          verbose=False)
    assert not (tmp_path / 'out').exists()
    with pytest.raises(ValueError, match='known: street, street2'):
        render_scene(np.random.default_rng(0), 64, 128, 'street3')


def _statistics(family: str, images: int = 24) -> dict:
    """Class shares, horizon rows and object heights of ``images`` scenes
    of 128x256."""
    counts = np.zeros(256, np.int64)
    heights = {CAR: [], PERSON: [], TRUCK: []}
    horizon = []
    for i in range(images):
        _, label = render_scene(np.random.default_rng(i), 128, 256, family)
        counts += np.bincount(label.ravel(), minlength=256)
        horizon.append(np.nonzero((label == ROAD).any(1))[0].min() / 128)
        for k in heights:
            _, _, stats, _ = cv2.connectedComponentsWithStats(
                (label == k).astype(np.uint8), connectivity=4)
            heights[k] += stats[1:, cv2.CC_STAT_HEIGHT].tolist()
    labelled = counts[:len(CLASSES)]
    return dict(share=labelled / labelled.sum(), horizon=np.array(horizon),
                heights={k: np.array(v) for k, v in heights.items()})


def test_street2_has_other_statistics():
    """Other camera (horizon, perspective), object sizes and class
    frequencies than the default family, compared on the same seeds."""
    street, street2 = _statistics('street'), _statistics('street2')
    # Camera: a higher horizon (the road starts higher in the image) and a
    # wider road at the bottom row, so less sky and much more road.
    assert street2['horizon'].max() < street['horizon'].min()
    assert street2['horizon'].mean() < 0.33 < 0.4 < street['horizon'].mean()
    a, b = street['share'], street2['share']
    assert b[SKY] < 0.6 * a[SKY] and b[ROAD] > 1.5 * a[ROAD]
    # Class frequencies: trucks only in street2, cars about three times as
    # frequent; the two distributions are far apart (total variation).
    assert a[TRUCK] == 0 and b[TRUCK] > 0.03
    assert b[CAR] > 2 * a[CAR]
    assert 0.5 * np.abs(a - b).sum() > 0.15
    # Object sizes span a wider range: smaller far away, larger near by.
    for k in (CAR, PERSON):
        lo_a, hi_a = np.percentile(street['heights'][k], [10, 90])
        lo_b, hi_b = np.percentile(street2['heights'][k], [10, 90])
        assert lo_b < lo_a and street2['heights'][k].max() > \
            1.5 * street['heights'][k].max()
        assert hi_b / lo_b > 1.5 * (hi_a / lo_a)
    # Trucks are the largest objects: most are taller than any person of
    # the default family.
    assert np.median(street2['heights'][TRUCK]) > \
        street['heights'][PERSON].max()
