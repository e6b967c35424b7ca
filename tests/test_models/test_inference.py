"""The pure functions of multi-scale inference (slide windows, flip, the
per-scale run) against results written out by hand.

The network is replaced by closed-form stand-ins: ``position`` returns, at
each pixel of the window it is given, that pixel's column in the full image
(it knows the window's offset from a constant channel of the input), so any
correct slide inference rebuilds the column map exactly; ``constant``
returns maps that resizing leaves as they are.
"""
import pytest
import torch
import torch.nn.functional as F

from projects.hmsa.models.fusion import ScaleOutput
from projects.hmsa.models.inference import (
    block_factor,
    check_input_size,
    flip_average,
    rescale,
    run_scales,
    slide,
    slide_windows,
)


def columns(h, w):
    """An image whose first channel holds each pixel's column."""
    x = torch.arange(w, dtype=torch.float32).expand(1, 1, h, w)
    return torch.cat([x, torch.zeros(1, 2, h, w)], dim=1)


def position(x, with_attention):
    """Logits: the column (from the image); attention: 0.25 everywhere."""
    col = x[:, :1]
    return ScaleOutput(
        logits=torch.cat([col, -col], dim=1),
        attention=torch.full_like(col, 0.25) if with_attention else None)


def test_slide_windows_cover_the_image_as_mmseg_does():
    boxes = slide_windows((5, 7), (3, 4), (2, 3))
    # rows start at 0, 2 and (clamped to the border) 2; columns 0, 3
    assert boxes == [(0, 3, 0, 4), (0, 3, 3, 7), (2, 5, 0, 4), (2, 5, 3, 7)]
    hit = torch.zeros(5, 7)
    for y1, y2, x1, x2 in boxes:
        hit[y1:y2, x1:x2] += 1
    assert hit.min() >= 1
    # a window larger than the image is the image
    assert slide_windows((5, 7), (8, 8), (4, 4)) == [(0, 5, 0, 7)]


def test_block_factor():
    boxes = slide_windows((8, 12), (4, 4), (2, 4))
    assert block_factor((8, 12), (4, 6), boxes) == 2
    assert block_factor((8, 12), (8, 12), boxes) == 1  # same size
    assert block_factor((8, 12), (3, 6), boxes) == 1  # not a whole factor
    odd = slide_windows((8, 12), (4, 4), (3, 4))  # an edge at 3
    assert block_factor((8, 12), (4, 6), odd) == 1


def test_slide_rebuilds_the_full_map():
    x = columns(10, 14)
    out = slide(position, x, (4, 6), (3, 4))
    torch.testing.assert_close(out.logits, torch.cat([x[:, :1], -x[:, :1]],
                                                     1))
    torch.testing.assert_close(out.attention, torch.full((1, 1, 10, 14),
                                                         0.25))
    plain = slide(position, x, (4, 6), (3, 4), with_attention=False)
    assert plain.attention is None
    torch.testing.assert_close(plain.logits, out.logits)


def test_slide_averages_where_windows_overlap():
    """A stand-in that returns how many windows it has run: overlapping
    pixels hold the mean of the windows that cover them."""
    calls = []

    def counting(x, with_attention):
        calls.append(1)
        return ScaleOutput(torch.full_like(x[:, :1], float(len(calls))))

    out = slide(counting, torch.zeros(1, 3, 4, 6), (4, 4), (4, 2))
    # windows x 0-4 (value 1) and x 2-6 (value 2)
    assert out.logits[0, 0, 0].tolist() == [1, 1, 1.5, 1.5, 2, 2]


def test_slide_on_a_smaller_grid_is_the_full_map_shrunk():
    x = F.interpolate(torch.randn(1, 3, 8, 12, generator=torch.Generator(
    ).manual_seed(0)), size=(16, 24), mode='bilinear')

    def network(x, with_attention):  # a stride-2 network
        small = F.avg_pool2d(x, 2)
        return ScaleOutput(small[:, :2], small[:, 2:].sigmoid())

    full = slide(network, x, (8, 8), (4, 8))
    small = slide(network, x, (8, 8), (4, 8), out_size=(8, 12))
    assert full.logits.shape[-2:] == (16, 24)
    assert small.logits.shape[-2:] == (8, 12)
    shrink = dict(size=(8, 12), mode='bilinear', align_corners=False)
    torch.testing.assert_close(small.logits, F.interpolate(full.logits,
                                                           **shrink))
    torch.testing.assert_close(small.attention,
                               F.interpolate(full.attention, **shrink))
    # windows that cut the 2x2 blocks keep the full grid
    kept = slide(network, x, (8, 8), (3, 8), out_size=(8, 12))
    assert kept.logits.shape[-2:] == (16, 24)


def test_flip_average():
    a = ScaleOutput(torch.tensor([[[[1., 2., 3.]]]]),
                    torch.tensor([[[[0.2, 0.4, 0.6]]]]))
    b = ScaleOutput(torch.tensor([[[[30., 20., 10.]]]]),
                    torch.tensor([[[[0.6, 0.4, 0.2]]]]))
    out = flip_average(a, b)
    torch.testing.assert_close(out.logits,
                               torch.tensor([[[[5.5, 11., 16.5]]]]))
    torch.testing.assert_close(out.attention,
                               torch.tensor([[[[0.2, 0.4, 0.6]]]]))
    assert flip_average(ScaleOutput(a.logits),
                        ScaleOutput(b.logits)).attention is None


def test_rescale_and_input_size():
    x = torch.randn(1, 3, 63, 65)
    assert rescale(x, 1.0) is x
    assert rescale(x, 0.5).shape[-2:] == (32, 32)  # round(31.5), round(32.5)
    assert rescale(x, 0.5, 'floor').shape[-2:] == (31, 32)
    check_input_size(x.shape, (0.5, 1.0), 'round', 32)
    with pytest.raises(ValueError, match='becomes 31x32 at scale 0.5'):
        check_input_size(x.shape, (0.5, 1.0), 'floor', 32)
    with pytest.raises(ValueError, match=r'shape \(N, C, H, W\)'):
        check_input_size(x[0].shape, (1.0, ), 'round', 32)


def test_run_scales_sizes_attention_and_flip():
    x = columns(8, 12)

    def network(x, with_attention):  # stride 2; logits = column / 2
        return position(F.avg_pool2d(x, 2), with_attention)

    outs = run_scales(network, x, (0.5, 1.0, 2.0), attention_scales=[0.5])
    assert {s: o.logits.shape[-2:] for s, o in outs.items()} == {
        0.5: (2, 3), 1.0: (4, 6), 2.0: (8, 12)
    }
    assert outs[0.5].attention is not None
    assert outs[1.0].attention is None and outs[2.0].attention is None
    image = run_scales(network, x, (0.5, 1.0), fusion_grid='image')
    assert image[0.5].logits.shape[-2:] == (4, 6)
    assert image[1.0].attention.shape[-2:] == (8, 12)
    # flip: a stand-in that adds each pixel's position in the image it is
    # given. Flipped back, the content (the column) is the same and the
    # position runs the other way, so the average adds (5 - 0) / 2.
    def positional(x, with_attention):
        pooled = F.avg_pool2d(x, 2)[:, :1]
        where = torch.arange(pooled.shape[-1], dtype=torch.float32)
        return ScaleOutput(pooled + where)

    column = 2 * torch.arange(6.) + 0.5  # pooled columns 2j, 2j + 1
    plain = run_scales(positional, x, (1.0, ))[1.0].logits
    flipped = run_scales(positional, x, (1.0, ), flip=True)[1.0].logits
    torch.testing.assert_close(plain[0, 0, 0], column + torch.arange(6.))
    torch.testing.assert_close(flipped[0, 0, 0], column + 2.5)
    # slide: a scale above 1 is accumulated on the 1.0 image's pixel grid
    slid = run_scales(network, x, (1.0, 2.0), slide_cfg=((8, 8), (4, 4)))
    assert slid[1.0].logits.shape[-2:] == (8, 12)
    assert slid[2.0].logits.shape[-2:] == (8, 12)
