"""Exact parity with NVIDIA/semantic-segmentation's multi-scale inference.

``test_cfg=dict(fusion_grid='image', scale_rounding='floor')`` must give
what NVIDIA's ``MscaleBase.nscale_forward`` (network/mscale.py) computes on
the same network. The reference below is written from that algorithm:

- each scale's input is ``interpolate(x, scale_factor=s, bilinear,
  align_corners=False, recompute_scale_factor=True)``;
- the network's logits and its post-sigmoid attention are both resized to
  that input's size (``_fwd``);
- scales are visited from the highest down: the first gives ``pred``; at
  ``s >= 1`` ``pred`` is resized to the scale's size and
  ``pred = a * p + (1 - a) * pred``; below 1, ``a * p`` and ``a`` are
  resized to ``pred``'s size and ``pred = a * p + (1 - a) * pred``.

Training (``two_scale_forward``) is the same pair on the same grid.
"""
import pytest
import torch
import torch.nn.functional as F

from tests.utils import assert_traces, build, make_samples, tiny_segmentor

PARITY = dict(fusion_grid='image', scale_rounding='floor')


def parity_model(train_cfg=None, **test_cfg):
    """A tiny model whose attention and logits vary across the image (the
    last convolutions start near zero, which makes every attention map
    about 0.5 and every logit about 0)."""
    torch.manual_seed(0)
    model = build(tiny_segmentor(train_cfg=train_cfg,
                                 test_cfg=test_cfg)).eval()
    model.decode_head.attention.conv_attn.weight.data.normal_(0, 1)
    model.decode_head.conv_seg.weight.data.normal_(0, 1)
    return model


def relative(a, ref):
    return float((a - ref).abs().max() / ref.abs().max())


def images(n=2, h=75, w=101, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, h, w, generator=g)


def _up(t, like):
    return F.interpolate(
        t, size=like.shape[-2:], mode='bilinear', align_corners=False)


def nvidia_fwd(model, img):
    """NVIDIA's ``_fwd``: logits and attention at the input's size."""
    out = model.forward_scale(img)
    return _up(out.logits, img), _up(out.attention, img)


def nvidia_resize(x, s):
    """NVIDIA's ``ResizeX``."""
    return F.interpolate(
        x, scale_factor=s, mode='bilinear', align_corners=False,
        recompute_scale_factor=True)


def nvidia_nscale(model, x, scales):
    """NVIDIA's ``nscale_forward``, step by step."""
    pred = None
    for s in sorted(scales, reverse=True):
        p, attn = nvidia_fwd(model, nvidia_resize(x, s))
        if pred is None:
            pred = p
        elif s >= 1.0:
            pred = _up(pred, p)
            pred = attn * p + (1 - attn) * pred
        else:
            p = _up(attn * p, pred)
            attn = _up(attn, pred)
            pred = p + (1 - attn) * pred
    return pred


def nvidia_two_scale(model, x, lo):
    """NVIDIA's ``two_scale_forward``: the fused logits the loss reads."""
    pred_lo, attn_lo = nvidia_fwd(model, nvidia_resize(x, lo))
    p_1x, _ = nvidia_fwd(model, x)
    return _up(attn_lo * pred_lo, p_1x) + (1 - _up(attn_lo, p_1x)) * p_1x


@pytest.mark.parametrize('scales', [(0.5, 1.0, 2.0), (0.5, 1.0),
                                    (0.75, 1.0, 1.5, 2.0)])
def test_parity_mode_equals_nvidia_nscale_forward(scales):
    model = parity_model(scales=list(scales), **PARITY)
    x = images()  # 75x101: floor and round give different sizes
    with torch.no_grad():
        ours = model(x, mode='tensor')
        ref = nvidia_nscale(model, x, scales)
        default = parity_model(scales=list(scales))(x, mode='tensor')
    assert ours.shape == ref.shape == (2, 5, 75, 101)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)
    # the default (cheap) fusion is a different function
    assert relative(default, ref) > 0.05


@pytest.mark.parametrize('grid,rounding', [('image', 'round'),
                                           ('feature', 'floor')])
def test_each_parity_option_alone_is_not_parity(grid, rounding):
    model = parity_model(scales=[0.5, 1.0, 2.0], fusion_grid=grid,
                         scale_rounding=rounding)
    x = images()
    with torch.no_grad():
        diff = relative(model(x, mode='tensor'),
                        nvidia_nscale(model, x, (0.5, 1.0, 2.0)))
    assert diff > 0.01


def test_parity_mode_per_scale_outputs_and_predict():
    model = build(tiny_segmentor(test_cfg=dict(
        scales=[0.5, 1.0], return_scales=True, **PARITY))).eval()
    x, samples = images(h=64, w=80), make_samples(2, 64, 80)
    with torch.no_grad():
        results = model.predict(x, samples)
        outs = model.forward_scales(x)
    assert outs[0.5].logits.shape[-2:] == (32, 40)  # the image grid
    assert outs[1.0].attention.shape[-2:] == (64, 80)
    assert results[0].scale_outputs[0.5].seg_logits.shape == (5, 64, 80)


def test_parity_training_loss_is_nvidias_two_scale_loss():
    model = parity_model(dict(scale_loss_weight=0), **PARITY)
    x, samples = images(), make_samples(2, 75, 101)
    losses = model.loss(x, samples)
    with torch.no_grad():
        joint = nvidia_two_scale(model, x, 0.5)
    expected = model.decode_head.loss_by_feat(joint, samples)['loss_ce']
    torch.testing.assert_close(losses['decode.loss_ce'], expected,
                               atol=1e-6, rtol=0)


def test_training_fuses_on_the_test_grid():
    """Training rescales and fuses as inference does: test_cfg's options
    are the model's; train_cfg has none of its own."""
    model = parity_model(dict(scale_loss_weight=0))  # round, feature grid
    x, samples = images(), make_samples(2, 75, 101)
    losses = model.loss(x, samples)
    with torch.no_grad():
        lo = model.forward_scale(F.interpolate(
            x, size=(38, 50), mode='bilinear',
            align_corners=False))  # round(37.5), round(50.5)
        hi = model.forward_scale(x)
        fused = _up(lo.attention * lo.logits, hi.logits) + (
            1 - _up(lo.attention, hi.logits)) * hi.logits
    expected = model.decode_head.loss_by_feat(fused, samples)['loss_ce']
    torch.testing.assert_close(losses['decode.loss_ce'], expected,
                               atol=1e-6, rtol=0)
    with torch.no_grad():
        joint = nvidia_two_scale(model, x, 0.5)
        nvidia = model.decode_head.loss_by_feat(joint, samples)['loss_ce']
    assert relative(_up(fused, joint), joint) > 0.01
    assert (losses['decode.loss_ce'] - nvidia).abs() > 1e-5


def test_parity_path_traces():
    model = build(tiny_segmentor(
        test_cfg=dict(scales=[0.5, 1.0, 2.0], **PARITY))).eval()
    x = images(n=1)
    assert_traces(model, x, images(n=1, seed=3))


@pytest.mark.parametrize('key,cfg', [
    ('test_cfg.fusion_grid', dict(test_cfg=dict(fusion_grid='pixel'))),
    ('test_cfg.scale_rounding', dict(test_cfg=dict(scale_rounding='ceil'))),
    ('train_cfg.fusion_grid', dict(train_cfg=dict(fusion_grid='image'))),
    ('train_cfg.scale_rounding', dict(train_cfg=dict(
        scale_rounding='floor'))),
])
def test_bad_grid_and_rounding(key, cfg):
    with pytest.raises(ValueError, match=key.replace('.', r'\.')):
        build(tiny_segmentor(**cfg))


def test_image_too_small_uses_the_rounding():
    # 65 * 0.5 = 32.5: 32 pixels when rounded (half to even), 32 floored;
    # 63 * 0.5 = 31.5: 32 rounded, 31 floored (below the 32 needed)
    for rounding in ('floor', 'round'):
        model = build(tiny_segmentor(test_cfg=dict(
            scales=[0.5, 1.0], scale_rounding=rounding))).eval()
        if rounding == 'floor':
            with pytest.raises(ValueError, match='becomes 31x31'):
                model.predict(images(n=1, h=63, w=63))
        else:
            with torch.no_grad():
                model.predict(images(n=1, h=63, w=63))
