"""HMSALocalVisualizer: one labelled picture per image with every scale."""
import itertools

import mmcv
import numpy as np
import pytest
import torch
from mmengine.structures import PixelData
from mmseg.datasets import CityscapesDataset
from mmseg.registry import VISUALIZERS
from mmseg.structures import SegDataSample
from mmseg.visualization import SegLocalVisualizer

from projects.hmsa_tools.visualization import HMSALocalVisualizer

H, W = 40, 60
META = dict(
    classes=CityscapesDataset.METAINFO['classes'],
    palette=CityscapesDataset.METAINFO['palette'])
_names = itertools.count()


def _visualizer(**kwargs):
    vis = VISUALIZERS.build(
        dict(type='HMSALocalVisualizer', name=f'hmsa_vis_{next(_names)}',
             **kwargs))
    vis.dataset_meta = META
    return vis


def _sample(scales=(0.5, 1.0, 2.0), gt=True, attention=True):
    g = torch.Generator().manual_seed(0)
    sample = SegDataSample()
    if gt:
        sample.gt_sem_seg = PixelData(
            data=torch.randint(0, 19, (1, H, W), generator=g))
    logits = torch.randn(19, H, W, generator=g)
    sample.seg_logits = PixelData(data=logits)
    sample.pred_sem_seg = PixelData(data=logits.argmax(0, keepdim=True))
    outputs = {}
    for s in scales:
        lg = torch.randn(19, H, W, generator=g)
        fields = dict(seg_logits=lg, pred_sem_seg=lg.argmax(0, keepdim=True))
        if attention:
            ramp = torch.linspace(0, 1, W).expand(1, H, W)
            fields['attention'] = ramp if s < 1 else 1 - ramp
        outputs[s] = PixelData(**fields)
    sample.scale_outputs = outputs
    sample.set_metainfo(dict(hmsa_scales=list(scales),
                             hmsa_fusion='attention'))
    return sample


def _image():
    return np.random.default_rng(0).integers(0, 256, (H, W, 3),
                                             dtype=np.uint8)


def test_registered_and_subclass():
    vis = _visualizer()
    assert isinstance(vis, HMSALocalVisualizer)
    assert isinstance(vis, SegLocalVisualizer)


def test_panels_and_captions():
    vis = _visualizer(panel_width=None)
    rows = vis.panels(_image(), _sample())
    captions = [[p.caption for p in row] for row in rows]
    assert captions == [
        ['image', 'ground truth', 'fused: attention over 0.5, 1, 2'],
        ['scale 0.5 prediction', 'scale 1 prediction', 'scale 2 prediction'],
        ['scale 0.5 attention, 0.00 to 1.00',
         'scale 1 attention, 0.00 to 1.00', 'scale 2 attention (unused)'],
    ]
    assert [[p.heatmap for p in row] for row in rows] == [[False] * 3,
                                                          [False] * 3,
                                                          [True] * 3]
    for row in rows:
        for panel in row:
            assert panel.image.shape == (H, W, 3)
            assert panel.image.dtype == np.uint8
    # Heat maps: low attention is blue, high attention red (JET), with the
    # ramp of the 0.5 scale rising from left to right.
    heat = rows[2][0].image.astype(int)
    assert heat[H // 2, 1, 2] > heat[H // 2, 1, 0]
    assert heat[H // 2, W - 2, 0] > heat[H // 2, W - 2, 2]


def test_writes_one_png_with_the_grid(tmp_path):
    vis = _visualizer(panel_width=None)
    out = tmp_path / 'x.png'
    image = _image()
    vis.add_datasample('x', image, _sample(), out_file=str(out),
                       with_labels=False)
    drawn = mmcv.imread(str(out), channel_order='rgb')
    rows = vis.panels(image, _sample())
    assert np.array_equal(drawn, vis.compose(rows))
    # Three rows of three panels, each under an 18-pixel caption bar, a
    # note on attention below and a colour scale on the right.
    assert 3 * (H + 18) + 18 <= drawn.shape[0] < 3 * (H + 18) + 40
    assert 3 * W <= drawn.shape[1] < 3 * W + 60
    assert np.array_equal(drawn[18:18 + H, :W], image)
    assert (drawn[:18, :W] < 100).mean() > 0.5  # the caption bar is dark
    assert (drawn[18:18 + H, -8:] == 255).all()  # no scale beside row 1


def _few_classes_sample():
    """Road and car everywhere, sky in the ground truth only; the ignore
    index on the ground truth's border."""
    sample = _sample()
    g = torch.Generator().manual_seed(1)

    def labels(other):
        pick = torch.rand(1, H, W, generator=g) < 0.5
        return torch.where(pick, torch.tensor(0), torch.tensor(other))

    gt = labels(10)
    gt[:, :2] = 255
    sample.gt_sem_seg = PixelData(data=gt)
    sample.pred_sem_seg = PixelData(data=labels(13))
    for out in sample.scale_outputs.values():
        out.pred_sem_seg = labels(13)
    return sample


def test_legend_lists_the_classes_shown():
    vis = _visualizer(panel_width=None)
    sample = _few_classes_sample()
    palette = [tuple(c) for c in META['palette']]
    road, sky, car = (palette[i] for i in (0, 10, 13))
    assert vis.legend(sample) == [('road', road), ('sky', sky),
                                  ('car', car)]
    assert vis.legend(sample, draw_gt=False) == [('road', road),
                                                 ('car', car)]
    image = _image()
    drawn = vis.draw_scales(image, sample)
    plain = vis.draw_scales(image, sample, with_labels=False)
    # The legend is added below the grid, which stays as it was.
    top = plain.shape[0]
    assert drawn.shape[0] > top and drawn.shape[1] == plain.shape[1]
    assert np.array_equal(drawn[:top], plain)
    legend = drawn[top:]
    corners = []
    for colour in (road, sky, car):
        swatch = (legend == colour).all(-1)
        ys, xs = np.nonzero(swatch)
        # a filled square of the class's exact palette colour
        assert swatch.sum() >= 36
        assert swatch.sum() == (np.ptp(ys) + 1) * (np.ptp(xs) + 1)
        corners.append((ys.min(), xs.min(), ys.max(), xs.max()))
    assert corners == sorted(corners)  # in class order
    for index in range(len(palette)):
        if index not in (0, 10, 13) and len(set(palette[index])) > 1:
            assert not (legend == palette[index]).all(-1).any(), index
    # each name is written in dark text right of its swatch
    for (y0, _, y1, x1), (_, next_x0, _, _) in zip(corners, corners[1:]):
        text = legend[y0:y1 + 1, x1 + 1:next_x0]
        assert (text.max(-1) < 128).sum() >= 10


def test_layout_without_gt_or_attention(tmp_path):
    vis = _visualizer(panel_width=None)
    rows = vis.panels(_image(), _sample(gt=False, attention=False))
    assert [len(r) for r in rows] == [2, 3]
    rows = vis.panels(_image(), _sample(scales=(1.0, 2.0)))
    assert [len(r) for r in rows] == [3, 2, 2]


def test_panel_width_scales_the_picture():
    vis = _visualizer(panel_width=120)
    drawn = vis.draw_scales(_image(), _sample())
    assert drawn.shape[1] >= 3 * 120 and drawn.shape[0] >= 3 * 80


def test_without_scale_outputs_behaves_like_parent(tmp_path):
    sample = _sample()
    del sample.scale_outputs
    ours, theirs = tmp_path / 'ours.png', tmp_path / 'theirs.png'
    _visualizer().add_datasample('a', _image(), sample, out_file=str(ours))
    parent = SegLocalVisualizer(name=f'parent_{next(_names)}')
    parent.dataset_meta = META
    parent.add_datasample('a', _image(), sample, out_file=str(theirs))
    assert np.array_equal(mmcv.imread(str(ours)), mmcv.imread(str(theirs)))


def test_saves_through_vis_backend(tmp_path):
    # The path of tools/test.py --show-dir: the hook calls add_datasample
    # without out_file and the LocalVisBackend stores the picture.
    vis = _visualizer(
        panel_width=None,
        vis_backends=[dict(type='LocalVisBackend')],
        save_dir=str(tmp_path))
    vis.add_datasample('val_frame.png', _image(), _sample(), step=3)
    files = list(tmp_path.rglob('*.png'))
    assert len(files) == 1 and 'val_frame' in files[0].name
    assert mmcv.imread(str(files[0])).shape[0] > 3 * H


def test_needs_class_meta():
    vis = _visualizer()
    vis.dataset_meta = {}
    with pytest.raises(ValueError, match='dataset_meta'):
        vis.panels(_image(), _sample())
