"""The fusion rules against independent statements of the method's formulas.

Two independent references are used:

- closed form: with spatially constant maps resizing is the identity, so the
  hierarchical chain collapses to a weighted sum whose weights follow from
  the recursion by hand: the lowest scale gets ``a_low``, the next
  ``(1 - a_low) * a_next``, ..., the highest the product of all ``1 - a``;
- a step-by-step reference written from the text of the rules, used on
  random, spatially varying maps of different sizes.
"""
import pytest
import torch
import torch.nn.functional as F

from projects.hmsa.models import (
    ScaleOutput,
    explicit_fuse,
    fuse,
    hierarchical_fuse,
    max_fuse,
    mean_fuse,
)
from projects.hmsa.models.fusion import (
    fuse_with_attention,
    resize_output,
    resize_to,
    scaled_size,
)

C = 3


def constant(value, n=1, channels=C, size=(4, 6)):
    v = torch.as_tensor(value, dtype=torch.float32).reshape(n, channels, 1, 1)
    return v.expand(n, channels, *size).clone()


def random_output(size, g, with_attention=True):
    logits = torch.randn(2, C, *size, generator=g)
    attn = torch.rand(2, 1, *size, generator=g) if with_attention else None
    return ScaleOutput(logits=logits, attention=attn)


def pair(low: ScaleOutput, high: ScaleOutput):
    """A lower scale fused into 1.0, the rule of a training pair."""
    return hierarchical_fuse({0.5: low, 1.0: high})


def test_two_scale_extremes_and_closed_form():
    p_lo = constant([1., 2., 3.], size=(3, 4))
    p_hi = constant([10., 20., 30.], size=(6, 8))
    ones = torch.ones(1, 1, 3, 4)
    fused = pair(ScaleOutput(p_lo, ones), ScaleOutput(p_hi))
    assert fused.shape == p_hi.shape
    torch.testing.assert_close(fused, constant([1., 2., 3.], size=(6, 8)))
    fused = pair(ScaleOutput(p_lo, 0 * ones), ScaleOutput(p_hi))
    torch.testing.assert_close(fused, p_hi)
    fused = pair(ScaleOutput(p_lo, 0.25 * ones), ScaleOutput(p_hi))
    expected = 0.25 * torch.tensor([1., 2., 3.]) + 0.75 * torch.tensor(
        [10., 20., 30.])
    torch.testing.assert_close(fused[0, :, 2, 5], expected)


def test_two_scale_matches_reference_on_random_maps(rng):
    low = random_output((5, 7), rng)
    high = random_output((10, 14), rng, with_attention=False)
    up = lambda t: F.interpolate(  # noqa: E731
        t, size=(10, 14), mode='bilinear', align_corners=False)
    expected = up(low.attention * low.logits) + \
        (1 - up(low.attention)) * high.logits
    torch.testing.assert_close(pair(low, high), expected)


def test_two_scale_needs_attention():
    with pytest.raises(ValueError, match='attention'):
        pair(ScaleOutput(torch.zeros(1, C, 2, 2)),
             ScaleOutput(torch.zeros(1, C, 4, 4)))


@pytest.mark.parametrize('scales', [
    (1.0, ), (0.5, 1.0), (1.0, 2.0), (0.5, 1.0, 2.0),
    (0.25, 0.5, 1.0, 1.5, 2.0)
])
def test_hierarchical_closed_form(scales):
    g = torch.Generator().manual_seed(len(scales))
    logits = {s: torch.randn(C, generator=g) for s in scales}
    attn = {s: torch.rand(1, generator=g).item() for s in scales}
    outputs = {
        s: ScaleOutput(
            logits=constant(logits[s], size=(int(8 * s), int(8 * s))),
            attention=torch.full((1, 1, int(8 * s), int(8 * s)), attn[s]))
        for s in scales
    }
    # Closed form: visiting from the highest scale down, each lower scale
    # takes share a_s of what is left; the highest keeps the rest.
    order = sorted(scales)  # lowest first
    expected = torch.zeros(C)
    remaining = 1.0
    for s in order[:-1]:
        expected += remaining * attn[s] * logits[s]
        remaining *= 1 - attn[s]
    expected += remaining * logits[order[-1]]
    fused = hierarchical_fuse(outputs)
    assert fused.shape[-2:] == (8, 8)  # the 1.0 scale's grid
    torch.testing.assert_close(
        fused[0, :, 3, 3], expected, rtol=1e-5, atol=1e-5)
    assert torch.allclose(fused, fused[:, :, :1, :1].expand_as(fused))


def _reference_nscale(outputs, finest=False):
    """The rule as the paper states it, written out step by step; with
    ``finest`` every lower scale is brought up to the highest one's grid."""
    scales = sorted(outputs.keys(), reverse=True)
    up_size = outputs[scales[0] if finest else 1.0].logits.shape[-2:]
    pred = outputs[scales[0]].logits
    for s in scales[1:]:
        p, a = outputs[s].logits, outputs[s].attention
        if s >= 1.0 and not finest:
            down = F.interpolate(
                pred, size=p.shape[-2:], mode='bilinear',
                align_corners=False)
            pred = a * p + (1 - a) * down
        else:
            ap = F.interpolate(
                a * p, size=up_size, mode='bilinear', align_corners=False)
            a_up = F.interpolate(
                a, size=up_size, mode='bilinear', align_corners=False)
            pred = ap + (1 - a_up) * pred
    return pred


def test_hierarchical_matches_reference_on_random_maps(rng):
    sizes = {0.25: (3, 4), 0.5: (5, 8), 1.0: (10, 16), 2.0: (20, 32)}
    outputs = {s: random_output(sz, rng) for s, sz in sizes.items()}
    torch.testing.assert_close(
        hierarchical_fuse(outputs), _reference_nscale(outputs))
    # The highest scale's attention is never used.
    changed = dict(outputs)
    changed[2.0] = ScaleOutput(outputs[2.0].logits,
                               torch.rand(2, 1, 20, 32, generator=rng))
    torch.testing.assert_close(
        hierarchical_fuse(changed), hierarchical_fuse(outputs))


def test_finest_grid_matches_reference_on_random_maps(rng):
    sizes = {0.5: (5, 8), 1.0: (10, 16), 1.5: (15, 24), 2.0: (20, 32)}
    outputs = {s: random_output(sz, rng) for s, sz in sizes.items()}
    fused = hierarchical_fuse(outputs, finest=True)
    assert fused.shape[-2:] == (20, 32)  # the highest scale's grid
    torch.testing.assert_close(fused, _reference_nscale(outputs, True))
    assert not torch.allclose(
        F.interpolate(hierarchical_fuse(outputs), size=(20, 32),
                      mode='bilinear', align_corners=False), fused)
    # Up to 1.0 the highest scale's grid is the 1.0 grid: nothing changes.
    low = {s: outputs[s] for s in (0.5, 1.0)}
    torch.testing.assert_close(
        hierarchical_fuse(low, finest=True), hierarchical_fuse(low))
    for rule in ('mean', 'max', 'explicit'):
        torch.testing.assert_close(
            fuse(low, rule, finest=True), fuse(low, rule))
    # mean and max of the logits on the highest grid
    resized = torch.stack([
        F.interpolate(o.logits, size=(20, 32), mode='bilinear',
                      align_corners=False) for o in outputs.values()
    ])
    torch.testing.assert_close(
        mean_fuse(outputs, finest=True), resized.mean(0))
    torch.testing.assert_close(
        max_fuse(outputs, finest=True), resized.amax(0))
    assert explicit_fuse(outputs, finest=True).shape[-2:] == (20, 32)


def test_finest_grid_keeps_the_highest_scale_where_lower_scales_defer(rng):
    """Where every lower scale's attention is 0 the highest scale decides:
    on its own grid its logits come through untouched; the 1.0 grid
    resizes them down and back, which blurs what only it resolves."""
    outputs = {
        s: ScaleOutput(
            torch.randn(1, C, *sz, generator=rng), torch.zeros(1, 1, *sz))
        for s, sz in {0.5: (4, 4), 1.0: (8, 8), 2.0: (16, 16)}.items()
    }
    high = outputs[2.0].logits
    torch.testing.assert_close(hierarchical_fuse(outputs, finest=True), high)
    back_up = F.interpolate(hierarchical_fuse(outputs), size=(16, 16),
                            mode='bilinear', align_corners=False)
    assert (back_up - high).abs().mean() > 0.1


def test_mean_and_max(rng):
    outputs = {
        0.5: random_output((5, 8), rng),
        1.0: random_output((10, 16), rng),
        2.0: random_output((20, 32), rng)
    }
    resized = [
        F.interpolate(
            outputs[s].logits, size=(10, 16), mode='bilinear',
            align_corners=False) for s in (0.5, 1.0, 2.0)
    ]
    torch.testing.assert_close(mean_fuse(outputs),
                               (resized[0] + resized[1] + resized[2]) / 3)
    torch.testing.assert_close(
        max_fuse(outputs),
        torch.maximum(torch.maximum(resized[0], resized[1]), resized[2]))
    torch.testing.assert_close(fuse(outputs, 'mean'), mean_fuse(outputs))


def test_fusion_errors(rng):
    outputs = {0.5: random_output((5, 8), rng)}
    with pytest.raises(ValueError, match='1.0'):
        hierarchical_fuse(outputs)
    with pytest.raises(ValueError, match='1.0'):
        mean_fuse(outputs)
    with pytest.raises(ValueError, match='unknown fusion rule'):
        fuse({1.0: random_output((5, 8), rng)}, 'median')
    no_attn = {
        0.5: random_output((5, 8), rng, with_attention=False),
        1.0: random_output((10, 16), rng)
    }
    with pytest.raises(ValueError, match='attention branch'):
        hierarchical_fuse(no_attn)


# ------------------------------------------------------ explicit attention
def test_explicit_closed_form():
    """Constant maps: weights are a softmax of the scores z = logit(a)."""
    scores = torch.tensor([0.3, -1.2, 2.0])
    outputs = {
        s: ScaleOutput(
            logits=constant([float(i), 2. * i, -i], size=(4, 6)),
            attention=torch.sigmoid(scores[i]).expand(1, 1, 4, 6).clone())
        for i, s in enumerate((0.5, 1.0, 2.0))
    }
    w = torch.exp(scores) / torch.exp(scores).sum()
    expected = sum(w[i] * torch.tensor([float(i), 2. * i, -i])
                   for i in range(3))
    fused = fuse(outputs, 'explicit')
    torch.testing.assert_close(fused[0, :, 2, 3], expected)


def test_explicit_matches_reference_on_random_maps(rng):
    outputs = {
        0.5: random_output((5, 8), rng),
        1.0: random_output((10, 16), rng),
        2.0: random_output((20, 32), rng)
    }

    def up(t):
        return F.interpolate(
            t, size=(10, 16), mode='bilinear', align_corners=False)

    scores = [
        up(torch.log(o.attention / (1 - o.attention)))
        for o in outputs.values()
    ]
    num = [torch.exp(z) for z in scores]
    total = num[0] + num[1] + num[2]
    expected = sum(n / total * up(o.logits)
                   for n, o in zip(num, outputs.values()))
    torch.testing.assert_close(explicit_fuse(outputs), expected)


def test_explicit_needs_attention_everywhere(rng):
    outputs = {
        1.0: random_output((10, 16), rng),
        2.0: random_output((20, 32), rng, with_attention=False)
    }
    with pytest.raises(ValueError, match='explicit fusion needs'):
        explicit_fuse(outputs)


def test_training_pair_above_one_fuses_on_the_unit_grid(rng):
    """(1.0, 2.0): pred = a_1 * p_1 + (1 - a_1) * down(p_2)."""
    one, two = random_output((10, 16), rng), random_output((20, 32), rng)
    down = F.interpolate(
        two.logits, size=(10, 16), mode='bilinear', align_corners=False)
    expected = one.attention * one.logits + (1 - one.attention) * down
    torch.testing.assert_close(
        hierarchical_fuse({1.0: one, 2.0: two}), expected)


# ------------------------------------------------------- sizes and grids
@pytest.mark.parametrize('scale', [0.25, 0.3, 0.5, 0.57, 0.7, 0.75, 1.0,
                                   1.25, 1.5, 1.75, 2.0])
def test_floor_rounding_is_interpolates_recomputed_size(scale):
    """``'floor'`` gives the size F.interpolate(scale_factor,
    recompute_scale_factor=True) makes, and the same image."""
    for h, w in ((64, 64), (75, 101), (33, 47), (1024, 2048), (49, 97)):
        x = torch.arange(h * w, dtype=torch.float32).reshape(1, 1, h, w)
        ref = F.interpolate(x, scale_factor=scale, mode='bilinear',
                            align_corners=False, recompute_scale_factor=True)
        size = scaled_size((h, w), scale, 'floor')
        assert size == tuple(ref.shape[-2:])
        torch.testing.assert_close(resize_to(x, size), ref)


def test_round_rounding_is_pythons_round():
    # 75 * 0.5 = 37.5 and 73 * 0.5 = 36.5: Python rounds half to even
    assert scaled_size((75, 73), 0.5) == (38, 36)
    assert scaled_size((75, 73), 0.5, 'round') == (38, 36)
    assert scaled_size((75, 73), 0.5, 'floor') == (37, 36)
    assert scaled_size((3, 3), 0.1, 'floor') == (1, 1)  # at least a pixel
    with pytest.raises(ValueError, match='unknown rounding'):
        scaled_size((8, 8), 0.5, 'ceil')


def test_resize_output(rng):
    out = random_output((5, 7), rng)
    big = resize_output(out, (10, 14))
    torch.testing.assert_close(big.logits, F.interpolate(
        out.logits, size=(10, 14), mode='bilinear', align_corners=False))
    torch.testing.assert_close(big.attention, F.interpolate(
        out.attention, size=(10, 14), mode='bilinear', align_corners=False))
    assert 0 < big.attention.min() and big.attention.max() < 1
    plain = resize_output(random_output((5, 7), rng, False), (10, 14))
    assert plain.attention is None and plain.logits.shape[-2:] == (10, 14)


def test_image_grid_fusion_is_the_chain_on_upsampled_maps():
    """Constant maps: the grid changes nothing, so fusing on the image grid
    gives the closed form of the feature grid, at the image's size."""
    a_lo, a_one = 0.2, 0.7
    outs = {
        0.5: ScaleOutput(constant([1., 2., 3.], size=(3, 4)),
                         torch.full((1, 1, 3, 4), a_lo)),
        1.0: ScaleOutput(constant([4., 5., 6.], size=(6, 8)),
                         torch.full((1, 1, 6, 8), a_one)),
        2.0: ScaleOutput(constant([7., 8., 9.], size=(12, 16))),
    }
    image = {s: resize_output(o, (int(24 * s), int(32 * s)))
             for s, o in outs.items()}
    got = hierarchical_fuse(image)
    expected = a_lo * constant([1., 2., 3.], size=(24, 32)) + (
        1 - a_lo) * (a_one * constant([4., 5., 6.], size=(24, 32)) +
                     (1 - a_one) * constant([7., 8., 9.], size=(24, 32)))
    torch.testing.assert_close(got, expected)


def test_fuse_with_attention_returns_what_each_scale_was_fused_with(rng):
    outputs = {
        0.5: random_output((5, 8), rng),
        1.0: random_output((10, 16), rng),
        2.0: random_output((20, 32), rng)
    }
    fused, used = fuse_with_attention(outputs, 'attention')
    torch.testing.assert_close(fused, hierarchical_fuse(outputs))
    assert set(used) == {0.5, 1.0}  # the highest scale's is never used
    assert all(used[s] is outputs[s].attention for s in used)
    fused, used = fuse_with_attention(outputs, 'explicit')
    torch.testing.assert_close(fused, explicit_fuse(outputs))
    assert set(used) == {0.5, 1.0, 2.0}
    with pytest.raises(ValueError, match='uses no attention'):
        fuse_with_attention(outputs, 'mean')
