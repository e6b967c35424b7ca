"""HMSAEncoderDecoder: training losses, inference, attention-only, errors."""
import pytest
import torch
import torch.nn.functional as F

from projects.hmsa.models import ScaleOutput, hierarchical_fuse
from projects.hmsa.models.attention_branch import read_features
from projects.hmsa.models.inference import rescale, slide
from tests.utils import (
    NUM_CLASSES,
    assert_traces,
    build,
    grad_receivers,
    make_samples,
    tiny_segmentor,
    tiny_sep_aspp_head,
)


def images(n=2, h=64, w=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, h, w, generator=g)


# --------------------------------------------------------------- training
@pytest.mark.parametrize('weight,aux', [(0.05, True), (0, False),
                                        ([0.1, 0.2], False)])
def test_loss_terms(weight, aux):
    model = build(
        tiny_segmentor(
            auxiliary=aux,
            train_cfg=dict(lo_scale=0.5, scale_loss_weight=weight))).train()
    losses = model.loss(images(), make_samples(2, 64, 64))
    expected = {'decode.loss_ce', 'decode.acc_seg'}
    if weight != 0:
        expected |= {
            'scale_0.5.loss_ce', 'scale_0.5.acc_seg', 'scale_1.0.loss_ce',
            'scale_1.0.acc_seg'
        }
    if aux:
        expected |= {'aux.loss_ce', 'aux.acc_seg'}
    assert set(losses) == expected
    total = sum(v for k, v in losses.items() if 'loss' in k)
    total.backward()
    attn_grad = model.decode_head.attention.conv_attn.weight.grad
    assert attn_grad is not None and attn_grad.abs().sum() > 0


def test_scale_loss_is_weighted_copy_of_plain_loss():
    torch.manual_seed(0)
    model = build(tiny_segmentor(train_cfg=dict(scale_loss_weight=0.25)))
    model.eval()  # no dropout: deterministic logits
    x, samples = images(), make_samples(2, 64, 64)
    losses = model.loss(x, samples)
    logits = model.decode_head(model.extract_feat(x))
    plain = model.decode_head.loss_by_feat(logits, samples)['loss_ce']
    torch.testing.assert_close(losses['scale_1.0.loss_ce'], 0.25 * plain)


def test_training_fusion_matches_formula():
    model = build(tiny_segmentor()).eval()
    x, samples = images(), make_samples(2, 64, 64)
    losses = model.loss(x, samples)
    lo = model.forward_scale(
        F.interpolate(x, size=(32, 32), mode='bilinear',
                      align_corners=False))
    hi = model.forward_scale(x)
    up = lambda t: F.interpolate(  # noqa: E731
        t, size=hi.logits.shape[-2:], mode='bilinear', align_corners=False)
    fused = up(lo.attention * lo.logits) + (1 - up(lo.attention)) * hi.logits
    expected = model.decode_head.loss_by_feat(fused, samples)['loss_ce']
    torch.testing.assert_close(losses['decode.loss_ce'], expected)


def test_attention_only_trains_exactly_the_attention_branch():
    model = build(
        tiny_segmentor(
            auxiliary=True, train_cfg=dict(attention_only=True)))
    model.train()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(
        n.startswith('decode_head.attention.') for n in trainable)
    assert not model.backbone.training and not model.decode_head.training
    assert not model.auxiliary_head.training
    assert model.decode_head.attention.training
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optim = torch.optim.SGD(model.parameters(), lr=0.5)
    for seed in range(2):
        losses = model.loss(images(seed=seed), make_samples(2, 64, 64, seed))
        assert set(losses) == {'decode.loss_ce', 'decode.acc_seg'}
        optim.zero_grad()
        losses['decode.loss_ce'].backward()
        optim.step()
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    # every changed tensor is in the attention branch, and it did learn
    assert changed and all(
        k.startswith('decode_head.attention.') for k in changed)
    # BatchNorm statistics outside the branch are untouched
    stats = [k for k in before if 'running_' in k or 'num_batches' in k]
    frozen = [k for k in stats if not k.startswith('decode_head.attention')]
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)
    # and the frozen parts received no gradient at all
    assert all(p.grad is None for n, p in model.named_parameters()
               if not n.startswith('decode_head.attention.'))


def test_train_cfg_errors():
    with pytest.raises(ValueError, match='lo_scale'):
        build(tiny_segmentor(train_cfg=dict(lo_scale=1.5)))
    with pytest.raises(ValueError, match='lo_scale'):
        build(tiny_segmentor(train_cfg=dict(lo_scale=0)))
    with pytest.raises(ValueError, match='scale_loss_weight'):
        build(tiny_segmentor(train_cfg=dict(scale_loss_weight=-1)))
    for pairs, match in (([[0.5, 2.0]], 'one of them 1.0'),
                         ([[1.0, 1.0]], 'different scales'),
                         ([[0.5, 1.0], [1.0, 0.5]], 'repeats a pair'),
                         ([0.5, 1.0], r'\[lo, hi\] pairs'), ([], 'non-empty'),
                         ([[1.0]], r'\[lo, hi\] pairs')):
        with pytest.raises(ValueError, match=match):
            build(tiny_segmentor(train_cfg=dict(scale_pairs=pairs)))
    with pytest.raises(ValueError, match='pair_sampling'):
        build(tiny_segmentor(train_cfg=dict(pair_sampling='some')))
    with pytest.raises(ValueError, match='train_cfg.fusion'):
        build(tiny_segmentor(train_cfg=dict(fusion='mean')))
    with pytest.raises(ValueError, match='must contain 1.0'):
        build(
            tiny_segmentor(
                train_cfg=dict(fusion='explicit', scale_pairs=[[0.5, 2]])))
    # settings that contradict each other, and replaced names
    with pytest.raises(ValueError, match='both set the training scales'):
        build(
            tiny_segmentor(
                train_cfg=dict(lo_scale=0.25, scale_pairs=[[0.5, 1.0]])))
    for old, new in (('explicit_scales', 'scale_pairs'),
                     ('fusion_grid', 'test_cfg.fusion_grid'),
                     ('scale_rounding', 'test_cfg.scale_rounding')):
        with pytest.raises(ValueError, match=f'{old} is no longer.*{new}'):
            build(tiny_segmentor(train_cfg={old: [0.5, 1.0]}))
    with pytest.raises(ValueError, match='now called "attention"'):
        build(tiny_segmentor(train_cfg=dict(fusion='hierarchical')))
    with pytest.raises(ValueError, match='needs a single scale pair'):
        build(
            tiny_segmentor(
                train_cfg=dict(
                    scale_pairs=[[0.5, 1.0], [1.0, 2.0]],
                    scale_loss_weight=[0.1, 0.2])))
    with pytest.raises(ValueError, match='detach_scales=True.*untrained'):
        build(
            tiny_segmentor(
                train_cfg=dict(detach_scales=True, scale_loss_weight=0)))


def test_lo_scale_agreeing_with_scale_pairs_is_accepted():
    model = build(
        tiny_segmentor(train_cfg=dict(lo_scale=0.5, scale_pairs=[[0.5, 1]])))
    assert model.train_cfg.pairs == ((0.5, 1.0), )
    model = build(tiny_segmentor(train_cfg=dict(scale_pairs=[[1.0, 2.0]])))
    assert model.train_cfg.pairs == ((1.0, 2.0), )


# ------------------------------------------------ several pairs, explicit
def _scale_outputs(model, x, scales):
    return {
        s: model.forward_scale(
            F.interpolate(
                x,
                size=(int(64 * s), int(64 * s)),
                mode='bilinear',
                align_corners=False) if s != 1.0 else x)
        for s in scales
    }


def _resize(t, size):
    return F.interpolate(t, size=size, mode='bilinear', align_corners=False)


def test_two_pairs_loss_is_the_mean_of_each_pairs_fused_loss():
    model = build(
        tiny_segmentor(
            train_cfg=dict(
                scale_pairs=[[0.5, 1.0], [1.0, 2.0]],
                scale_loss_weight=0.1))).eval()
    x, samples = images(), make_samples(2, 64, 64)
    losses = model.loss(x, samples)
    assert {k for k in losses if 'loss' in k} == {
        'decode_0.5-1.loss_ce', 'decode_1-2.loss_ce', 'scale_0.5.loss_ce',
        'scale_1.0.loss_ce', 'scale_2.0.loss_ce'
    }
    out = _scale_outputs(model, x, (0.5, 1.0, 2.0))
    size = out[1.0].logits.shape[-2:]
    low = _resize(out[0.5].attention * out[0.5].logits, size) + (
        1 - _resize(out[0.5].attention, size)) * out[1.0].logits
    high = out[1.0].attention * out[1.0].logits + (
        1 - out[1.0].attention) * _resize(out[2.0].logits, size)
    ce = model.decode_head.loss_by_feat
    torch.testing.assert_close(losses['decode_0.5-1.loss_ce'],
                               ce(low, samples)['loss_ce'] / 2)
    torch.testing.assert_close(losses['decode_1-2.loss_ce'],
                               ce(high, samples)['loss_ce'] / 2)
    torch.testing.assert_close(losses['scale_2.0.loss_ce'],
                               0.1 * ce(out[2.0].logits, samples)['loss_ce'])


def test_random_pair_sampling_draws_one_pair_per_step():
    model = build(
        tiny_segmentor(
            train_cfg=dict(
                scale_pairs=[[0.5, 1.0], [1.0, 2.0]],
                pair_sampling='random'))).eval()
    seen = set()
    torch.manual_seed(0)
    x, samples = images(n=1), make_samples(1, 64, 64)
    for _ in range(8):
        with torch.no_grad():
            losses = model.loss(x, samples)
        # one fused loss, as for a single pair; its scales' own losses say
        # which pair it was
        scales = {k.split('.loss')[0] for k in losses if k.endswith('_ce')}
        assert 'decode' in scales and len(scales) == 3
        seen.add(tuple(sorted(scales - {'decode'})))
    assert seen == {('scale_0.5', 'scale_1.0'), ('scale_1.0', 'scale_2.0')}


def test_two_pair_attention_only_trains_only_the_branch():
    model = build(
        tiny_segmentor(
            auxiliary=True,
            train_cfg=dict(
                scale_pairs=[[0.5, 1.0], [1.0, 2.0]],
                attention_only=True))).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optim = torch.optim.SGD(model.parameters(), lr=0.5)
    for seed in range(2):
        losses = model.loss(images(seed=seed), make_samples(2, 64, 64, seed))
        assert {k for k in losses if 'loss' in k} == {
            'decode_0.5-1.loss_ce', 'decode_1-2.loss_ce'
        }
        optim.zero_grad()
        sum(v for k, v in losses.items() if 'loss' in k).backward()
        optim.step()
    changed = {
        k
        for k, v in model.state_dict().items()
        if not torch.equal(before[k], v)
    }
    assert changed and all(
        k.startswith('decode_head.attention.') for k in changed)
    assert all(p.grad is None for n, p in model.named_parameters()
               if not n.startswith('decode_head.attention.'))


@pytest.mark.parametrize('attention_only', [False, True])
def test_explicit_training_loss_matches_its_formula(attention_only):
    """Chen et al.: w_s = softmax_s(z_s), fused = sum_s w_s * up(p_s)."""
    model = build(
        tiny_segmentor(
            train_cfg=dict(
                fusion='explicit',
                scale_pairs=[[0.5, 1.0, 2.0]],
                scale_loss_weight=0.3,
                attention_only=attention_only)))
    model.eval()  # deterministic logits (no dropout)
    x, samples = images(), make_samples(2, 64, 64)
    losses = model.loss(x, samples)
    out = _scale_outputs(model, x, (0.5, 1.0, 2.0))
    size = out[1.0].logits.shape[-2:]
    # the branch's score z_s before its sigmoid, written out here
    branch = model.decode_head.attention
    scores, logits = [], []
    for s in (0.5, 1.0, 2.0):
        xs = x if s == 1.0 else F.interpolate(
            x, size=(int(64 * s), ) * 2, mode='bilinear',
            align_corners=False)
        with read_features(model.decode_head) as read:
            p = model.decode_head(model.extract_feat(xs))
        feats = read[0]
        scores.append(_resize(branch.conv_attn(branch.convs(feats)), size))
        logits.append(_resize(p, size))
        torch.testing.assert_close(p, out[s].logits)
    e = [torch.exp(z) for z in scores]
    fused = sum(ei / (e[0] + e[1] + e[2]) * p for ei, p in zip(e, logits))
    expected = model.decode_head.loss_by_feat(fused, samples)['loss_ce']
    torch.testing.assert_close(losses['decode.loss_ce'], expected)
    scale_keys = {k for k in losses if k.startswith('scale_')}
    if attention_only:
        assert set(losses) == {'decode.loss_ce', 'decode.acc_seg'}
    else:
        assert {k for k in scale_keys if 'loss' in k} == {
            'scale_0.5.loss_ce', 'scale_1.0.loss_ce', 'scale_2.0.loss_ce'
        }
    losses['decode.loss_ce'].backward()
    assert branch.conv_attn.weight.grad.abs().sum() > 0


def test_training_without_attention_branch_is_refused():
    model = build(tiny_segmentor(head=tiny_sep_aspp_head(hmsa=False)))
    with pytest.raises(ValueError, match='attention branch'):
        model.loss(images(), make_samples(2, 64, 64))
    with pytest.raises(ValueError, match='attention_only=True needs'):
        build(
            tiny_segmentor(
                head=tiny_sep_aspp_head(hmsa=False),
                train_cfg=dict(attention_only=True)))


# -------------------------------------------------------------- inference
def _run_scales(model, x, scales):
    outs = {}
    for s in scales:
        size = (round(x.shape[2] * s), round(x.shape[3] * s))
        xs = x if s == 1 else F.interpolate(
            x, size=size, mode='bilinear', align_corners=False)
        outs[s] = model.forward_scale(xs)
    return outs


def varied(model):
    """``model`` (in eval mode) with logits and attention that vary across
    the image: BatchNorm statistics from an image, so features are not
    washed out, and the last convolutions (which start near zero, every
    attention map about 0.5) drawn at unit scale."""
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None
    with torch.no_grad():
        model.train().forward_scale(images())
    g = torch.Generator().manual_seed(1)
    for conv in (model.decode_head.conv_seg,
                 model.decode_head.attention.conv_attn):
        conv.weight.data.normal_(0, 1, generator=g)
    return model.eval()


@pytest.mark.parametrize('mode', ['whole', 'slide'])
def test_predict_each_fusion_and_mode(mode):
    test_cfg = dict(mode=mode, scales=[0.5, 1.0, 2.0])
    if mode == 'slide':
        test_cfg.update(crop_size=(64, 64), stride=(48, 48))
    model = varied(build(tiny_segmentor(test_cfg=test_cfg)))
    x = images(h=64, w=96)

    def samples():  # predict writes its results into the samples
        return make_samples(2, 64, 96, pad=(0, 16, 0, 8), ori=(28, 40))

    logits = {}
    with torch.no_grad():
        default = model.predict(x, samples())
        for fusion in ('attention', 'explicit', 'mean', 'max'):
            results = model.predict(x, samples(), fusion=fusion)
            for r in results:
                assert r.seg_logits.data.shape == (NUM_CLASSES, 28, 40)
                assert r.pred_sem_seg.data.shape == (1, 28, 40)
                torch.testing.assert_close(
                    r.pred_sem_seg.data,
                    r.seg_logits.data.argmax(0, keepdim=True))
            logits[fusion] = torch.stack([r.seg_logits.data for r in results])
    # test_cfg's rule is the default one, 'attention'
    assert model.test_cfg.fusion == 'attention'
    assert torch.equal(logits['attention'],
                       torch.stack([r.seg_logits.data for r in default]))
    # different rules give different logits on the same weights
    rules = list(logits)
    for i, a in enumerate(rules):
        for b in rules[i + 1:]:
            diff = (logits[a] - logits[b]).abs().max()
            assert diff > 0.01 * logits[a].abs().max(), (a, b)


@pytest.mark.parametrize('grid', ['feature', 'finest'])
def test_whole_attention_inference_matches_reference_chain(grid):
    finest = grid == 'finest'
    model = build(
        tiny_segmentor(
            test_cfg=dict(scales=[0.5, 1.0, 2.0], fusion_grid=grid))).eval()
    x = images(h=64, w=64)
    with torch.no_grad():
        got = model.inference(x, [dict(pad_shape=(64, 64))] * 2)
        outs = _run_scales(model, x, (0.5, 1.0, 2.0))
    ref = hierarchical_fuse(outs, finest=finest)
    ref = F.interpolate(ref, size=(64, 64), mode='bilinear',
                        align_corners=False)
    torch.testing.assert_close(got, ref)
    grid_size = outs[2.0 if finest else 1.0].logits.shape[-2:]
    for rule, op in (('mean', lambda t: t.mean(0)),
                     ('max', lambda t: t.amax(0))):
        with torch.no_grad():
            got = model.inference(x, [dict(pad_shape=(64, 64))] * 2,
                                  fusion=rule)
        stack = torch.stack([
            F.interpolate(o.logits, size=grid_size, mode='bilinear',
                          align_corners=False)
            for o in outs.values()
        ])
        ref = F.interpolate(op(stack), size=(64, 64), mode='bilinear',
                            align_corners=False)
        torch.testing.assert_close(got, ref)


def test_unseen_scales_and_flip():
    model = build(
        tiny_segmentor(
            test_cfg=dict(scales=[0.75, 1.0, 1.25, 1.5], flip=True))).eval()
    x = images(n=1, h=64, w=64)
    with torch.no_grad():
        got = model.inference(x, [dict(pad_shape=(64, 64))])
        plain = _run_scales(model, x, (0.75, 1.0, 1.25, 1.5))
        flipped = _run_scales(model, x.flip(-1), (0.75, 1.0, 1.25, 1.5))
    averaged = {
        s: ScaleOutput((plain[s].logits + flipped[s].logits.flip(-1)) / 2,
                       (plain[s].attention + flipped[s].attention.flip(-1)) /
                       2)
        for s in plain
    }
    ref = F.interpolate(hierarchical_fuse(averaged), size=(64, 64),
                        mode='bilinear', align_corners=False)
    torch.testing.assert_close(got, ref)


def test_return_scales_outputs():
    model = build(
        tiny_segmentor(test_cfg=dict(scales=[0.5, 1.0],
                                     return_scales=True))).eval()
    samples = make_samples(1, 64, 64, pad=(0, 8, 0, 0), ori=(30, 28),
                           flip=True)
    with torch.no_grad():
        result = model.predict(images(n=1), samples)[0]
    assert set(result.scale_outputs) == {0.5, 1.0}
    assert result.metainfo['hmsa_scales'] == [0.5, 1.0]
    assert result.metainfo['hmsa_fusion'] == 'attention'
    for out in result.scale_outputs.values():
        assert out.seg_logits.shape == (NUM_CLASSES, 30, 28)
        assert out.pred_sem_seg.shape == (1, 30, 28)
        assert out.attention.shape == (1, 30, 28)
        assert 0 < out.attention.min() and out.attention.max() < 1
    # with a single-scale list the per-scale output is the fused one
    with torch.no_grad():
        result = model.predict(
            images(n=1), make_samples(1, 64, 64), scales=[1.0])[0]
    assert result.metainfo['hmsa_scales'] == [1.0]
    torch.testing.assert_close(result.scale_outputs[1.0].seg_logits,
                               result.seg_logits.data)


@pytest.mark.parametrize('mode', ['whole', 'slide'])
def test_single_scale_equals_stock_model(mode):
    test_cfg = dict(mode=mode)
    if mode == 'slide':
        test_cfg.update(crop_size=(48, 48), stride=(32, 32))
    stock = build(tiny_segmentor(hmsa=False, test_cfg=dict(test_cfg)))
    hmsa = build(tiny_segmentor(test_cfg=dict(test_cfg, scales=[1.0])))
    hmsa.load_state_dict(stock.state_dict(), strict=False)
    stock.eval(), hmsa.eval()
    x = images(h=64, w=80)
    with torch.no_grad():
        a = stock.predict(x, make_samples(2, 64, 80, ori=(60, 70)))
        b = hmsa.predict(x, make_samples(2, 64, 80, ori=(60, 70)))
    for ra, rb in zip(a, b):
        torch.testing.assert_close(rb.seg_logits.data, ra.seg_logits.data)
        assert torch.equal(rb.pred_sem_seg.data, ra.pred_sem_seg.data)


def test_stock_head_supports_mean_and_max_only():
    model = build(
        tiny_segmentor(
            head=tiny_sep_aspp_head(hmsa=False),
            test_cfg=dict(scales=[0.5, 1.0], fusion='mean'))).eval()
    with torch.no_grad():
        out = model.predict(images())
    assert out[0].seg_logits.data.shape == (NUM_CLASSES, 64, 64)
    assert build(tiny_segmentor(
        head=tiny_sep_aspp_head(hmsa=False),
        test_cfg=dict(scales=[0.5, 1.0]))).test_cfg.fusion == 'mean'
    with pytest.raises(ValueError, match='attention branch'):
        model.predict(images(), fusion='attention')
    with pytest.raises(ValueError, match='attention branch'):
        build(tiny_segmentor(head=tiny_sep_aspp_head(hmsa=False),
                             test_cfg=dict(scales=[0.5, 1.0],
                                           fusion='attention')))


# ------------------------------------------------------------- bad input
@pytest.mark.parametrize('scales,match', [
    ([0.5, 2.0], 'must contain 1.0'),
    ([0.5, 1.0, -1.0], 'positive number'),
    ([0, 1.0], 'positive number'),
    ([], 'non-empty'),
    (1.0, 'non-empty list'),
    ([1.0, 1.0], 'repeats'),
    (['a', 1.0], 'positive number'),
])
def test_bad_scales(scales, match):
    with pytest.raises(ValueError, match=match):
        build(tiny_segmentor(test_cfg=dict(scales=scales)))
    model = build(tiny_segmentor()).eval()
    with pytest.raises(ValueError, match=match):
        model.predict(images(), scales=scales)


def test_bad_fusion_and_mode():
    with pytest.raises(ValueError, match='fusion must be one of'):
        build(tiny_segmentor(test_cfg=dict(fusion='median')))
    with pytest.raises(ValueError, match='crop_size'):
        build(tiny_segmentor(test_cfg=dict(mode='slide')))
    with pytest.raises(ValueError, match="mode must be one of 'whole'"):
        build(tiny_segmentor(test_cfg=dict(mode='tiles')))


def test_image_too_small_for_a_scale():
    model = build(tiny_segmentor(test_cfg=dict(scales=[0.25, 1.0]))).eval()
    with pytest.raises(ValueError, match=r'48x48 pixels becomes 12x12 at '
                       r'scale 0.25.*32 pixels'):
        model.predict(images(h=48, w=48))
    model.train()
    with pytest.raises(ValueError, match='at scale 0.5'):
        model.loss(images(h=40, w=40), make_samples(2, 40, 40))


def test_a_chain_trains_exactly_the_inference_fusion():
    model = build(
        tiny_segmentor(
            train_cfg=dict(
                scale_pairs=[[2.0, 0.5, 1.0]], attention_only=True))).eval()
    x, samples = images(), make_samples(2, 64, 64)
    losses = model.loss(x, samples)
    assert set(losses) == {'decode.loss_ce', 'decode.acc_seg'}
    out = _scale_outputs(model, x, (0.5, 1.0, 2.0))
    fused = hierarchical_fuse(out)
    torch.testing.assert_close(
        losses['decode.loss_ce'],
        model.decode_head.loss_by_feat(fused, samples)['loss_ce'])


@pytest.mark.parametrize('reads', ['features', 'higher'])
def test_detached_scales_let_the_fused_loss_train_only_the_branch(reads):
    """``detach_scales``: the same loss values, but the fused loss reaches
    the attention branch only and each scale's own loss the rest."""
    def model(detach):
        torch.manual_seed(0)
        head = tiny_sep_aspp_head(
            attention_cfg=dict(type='bottleneck', channels=8,
                               inputs=['probs', 'higher']))
        return build(
            tiny_segmentor(
                head=head if reads == 'higher' else None,
                train_cfg=dict(
                    scale_pairs=[[0.5, 1.0, 2.0]], scale_loss_weight=1,
                    detach_scales=detach),
                test_cfg=dict(mode='whole',
                              scales=[0.5, 1.0, 2.0]))).eval()

    x, samples = images(), make_samples(2, 64, 64)
    plain, cut = model(False), model(True)
    losses, cut_losses = plain.loss(x, samples), cut.loss(x, samples)
    assert set(losses) == set(cut_losses)
    for name in losses:
        torch.testing.assert_close(cut_losses[name], losses[name])
    branch = 'decode_head.attention.'
    fused = grad_receivers(cut, cut_losses['decode.loss_ce'])
    assert fused and all(n.startswith(branch) for n in fused)
    # without it the fused loss trains the trunk too
    assert any(not n.startswith(branch)
               for n in grad_receivers(plain, losses['decode.loss_ce']))
    own = grad_receivers(cut, sum(v for k, v in cut_losses.items()
                          if k.startswith('scale_') and 'loss' in k))
    assert any(n.startswith('backbone.') for n in own)
    assert not any(n.startswith(branch) for n in own)


def _trunk_scale_model(auxiliary=False, **train_cfg):
    torch.manual_seed(0)
    return build(
        tiny_segmentor(
            auxiliary=auxiliary,
            train_cfg=dict(dict(scale_pairs=[[0.5, 1.0, 2.0]],
                                scale_loss_weight=1), **train_cfg),
            test_cfg=dict(mode='whole', scales=[0.5, 1.0, 2.0])))


def test_trunk_scale_trains_the_network_at_one_scale_only():
    """``trunk_scale``: the network's own loss, the auxiliary head and the
    BatchNorm statistics come from that scale alone; the fused loss trains
    the branch only."""
    x, samples = images(), make_samples(2, 64, 64)
    model = _trunk_scale_model(auxiliary=True, trunk_scale=1.0).train()
    assert model.train_cfg.detach_scales is True
    modes = {n: m.training for n, m in model.named_modules()}
    losses = model.loss(x, samples)
    assert {k.rsplit('.', 1)[0] for k in losses} == {
        'decode', 'scale_1.0', 'aux'}
    # every module's mode is as it was before the step
    assert modes == {n: m.training for n, m in model.named_modules()}
    branch = 'decode_head.attention.'
    fused = grad_receivers(model, losses['decode.loss_ce'])
    assert fused and all(n.startswith(branch) for n in fused)
    own = grad_receivers(model, losses['scale_1.0.loss_ce'])
    assert any(n.startswith('backbone.') for n in own)
    assert not any(n.startswith(branch) for n in own)


def test_trunk_scale_leaves_batchnorm_statistics_to_that_scale():
    """The other scales run in eval mode: after a step the statistics
    outside the branch are those of one training pass at the trunk scale."""
    x, samples = images(), make_samples(2, 64, 64)
    for trunk in (1.0, 2.0):
        model = _trunk_scale_model(trunk_scale=trunk).train()
        model.loss(x, samples)
        ref = _trunk_scale_model().train()
        with torch.no_grad():
            ref._decode(ref.extract_feat(rescale(x, trunk, 'round')))
        stats = {
            n: b for n, b in model.named_buffers()
            if 'running' in n and not n.startswith('decode_head.attention.')
        }
        assert stats
        ref_stats = dict(ref.named_buffers())
        for name, value in stats.items():
            torch.testing.assert_close(value, ref_stats[name], msg=name)


def test_trunk_scale_errors():
    with pytest.raises(ValueError, match='trunk_scale=2.0 must be a scale '
                       'of every entry'):
        build(tiny_segmentor(train_cfg=dict(
            scale_pairs=[[0.5, 1.0], [1.0, 2.0]], trunk_scale=2.0,
            scale_loss_weight=1)))
    with pytest.raises(ValueError, match='attention_only=True trains none'):
        build(tiny_segmentor(train_cfg=dict(trunk_scale=1.0,
                                            attention_only=True)))
    with pytest.raises(ValueError, match='detach_scales=False contradicts'):
        build(tiny_segmentor(train_cfg=dict(trunk_scale=1.0,
                                            detach_scales=False)))
    with pytest.raises(ValueError, match='detach_scales=True.*untrained'):
        build(tiny_segmentor(train_cfg=dict(trunk_scale=1.0,
                                            scale_loss_weight=0)))
    # only the trunk scale's own weight must be above 0
    model = build(tiny_segmentor(train_cfg=dict(
        trunk_scale=1.0, scale_pairs=[[0.5, 1.0]], scale_loss_weight=[0, 1])))
    assert model.train_cfg.loss_weights == (0.0, 1.0)
    with pytest.raises(ValueError, match='detach_scales=True.*untrained'):
        build(tiny_segmentor(train_cfg=dict(
            trunk_scale=1.0, scale_pairs=[[0.5, 1.0]],
            scale_loss_weight=[1, 0])))
    with pytest.raises(ValueError, match='trunk_scale must be a positive'):
        build(tiny_segmentor(train_cfg=dict(trunk_scale='1')))


# --------------------------------- a branch that reads the higher scales
def _higher_model(test_cfg=None, **train_cfg):
    head = tiny_sep_aspp_head(
        attention_cfg=dict(type='bottleneck', channels=8,
                           inputs=['probs', 'higher']))
    return build(
        tiny_segmentor(
            head=head,
            train_cfg=train_cfg,
            test_cfg=dict(dict(mode='whole', scales=[0.5, 1.0, 2.0]),
                          **(test_cfg or {}))))


def _reference_higher_chain(model, outputs, finest=False):
    """The chain written out: a_s = branch(probs_s, probs(pred on s)); with
    ``finest`` every lower scale is brought up to scale 2's grid."""
    branch = model.decode_head.attention
    pred = outputs[2.0].logits
    attention = {}
    for s in (1.0, 0.5):
        p = outputs[s].logits
        a = branch(
            torch.cat([p.softmax(1),
                       _resize(pred, p.shape[-2:]).softmax(1)], 1))
        attention[s] = a
        if s >= 1.0 and not finest:
            pred = a * p + (1 - a) * _resize(pred, p.shape[-2:])
        else:
            size = pred.shape[-2:]
            pred = _resize(a * p, size) + (1 - _resize(a, size)) * pred
    return pred, attention


def test_higher_branch_inference_matches_the_written_out_chain():
    model = _higher_model(dict(return_scales=True,
                               fusion_grid='feature')).eval()
    x = images()
    with torch.no_grad():
        outputs = model.forward_scales(x)
        assert all(o.attention is None for o in outputs.values())
        fused = model.inference(
            x, [s.metainfo for s in make_samples(2, 64, 64)])
        expected, attention = _reference_higher_chain(model, outputs)
    torch.testing.assert_close(
        fused, _resize(expected, (64, 64)), rtol=1e-5, atol=1e-5)
    # the per-scale outputs carry the attention the chain used
    with torch.no_grad():
        results = model.predict(x, make_samples(2, 64, 64))
    scale_outputs = results[0].scale_outputs
    assert 'attention' not in scale_outputs[2.0]
    torch.testing.assert_close(
        scale_outputs[0.5].attention,
        _resize(attention[0.5], (64, 64))[0],
        rtol=1e-5,
        atol=1e-5)


def test_higher_branch_slide_mode_and_training():
    slide = _higher_model(
        dict(mode='slide', crop_size=(48, 48), stride=(32, 32))).eval()
    with torch.no_grad():
        assert slide.predict(images())[0].pred_sem_seg.data.shape == (1, 64,
                                                                      64)
    model = _higher_model(
        scale_pairs=[[0.5, 1.0, 2.0]], attention_only=True).eval()
    x, samples = images(), make_samples(2, 64, 64)
    losses = model.loss(x, samples)
    with torch.no_grad():
        expected, _ = _reference_higher_chain(model, model.forward_scales(x))
    torch.testing.assert_close(
        losses['decode.loss_ce'],
        model.decode_head.loss_by_feat(expected, samples)['loss_ce'])
    losses['decode.loss_ce'].backward()
    grads = {n for n, p in model.named_parameters() if p.grad is not None}
    assert grads and all(n.startswith('decode_head.attention.') for n in grads)


def test_finest_fusion_grid_in_inference_and_training():
    """``test_cfg.fusion_grid='finest'``: inference and the training loss
    fuse on scale 2's grid, by the written-out chain."""
    model = _higher_model(dict(fusion_grid='finest'),
                          scale_pairs=[[0.5, 1.0, 2.0]],
                          attention_only=True).eval()
    x, samples = images(), make_samples(2, 64, 64)
    with torch.no_grad():
        outputs = model.forward_scales(x)
        fused = model.inference(x, [s.metainfo for s in samples])
        expected, _ = _reference_higher_chain(model, outputs, finest=True)
        on_unit, _ = _reference_higher_chain(model, outputs)
    assert expected.shape[-2:] == outputs[2.0].logits.shape[-2:]
    torch.testing.assert_close(
        fused, _resize(expected, (64, 64)), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(fused, _resize(on_unit, (64, 64)))
    losses = model.loss(x, samples)
    torch.testing.assert_close(
        losses['decode.loss_ce'],
        model.decode_head.loss_by_feat(expected, samples)['loss_ce'])
    # mean fusion on the same grid
    with torch.no_grad():
        mean = model.inference(x, [s.metainfo for s in samples],
                               fusion='mean')
    stack = torch.stack(
        [_resize(o.logits, expected.shape[-2:]) for o in outputs.values()])
    torch.testing.assert_close(
        mean, _resize(stack.mean(0), (64, 64)), rtol=1e-5, atol=1e-5)


def test_higher_branch_refuses_explicit_fusion():
    with pytest.raises(ValueError, match='attention score per scale'):
        _higher_model(fusion='explicit')
    with pytest.raises(ValueError, match='attention score per scale'):
        _higher_model(dict(fusion='explicit'))
    with pytest.raises(ValueError, match='attention score per scale'):
        _higher_model().predict(images(), fusion='explicit')


# --------------------------------------------------------- deployment paths
def test_tensor_mode_is_the_fused_model():
    model = build(
        tiny_segmentor(test_cfg=dict(scales=[0.5, 1.0, 2.0]))).eval()
    x = images(h=64, w=96)
    with torch.no_grad():
        fused = model(x, mode='tensor')
        ref = model.inference(x, [dict(pad_shape=(64, 96))] * 2)
        single = model.single_scale_forward(x)
        at_one = model.inference(x, [dict(pad_shape=(64, 96))] * 2,
                                 scales=[1.0])
    torch.testing.assert_close(fused, ref)
    assert fused.shape == (2, NUM_CLASSES, 64, 96)
    assert single.shape == (2, NUM_CLASSES, 16, 24)  # the decoder's grid
    torch.testing.assert_close(at_one, _resize(single, (64, 96)))
    # the other scales do change the result
    assert (fused - at_one).abs().max() > 0.01 * at_one.abs().max()


@pytest.mark.parametrize('mode', ['whole', 'slide'])
def test_fused_path_traces(mode):
    test_cfg = dict(mode=mode, scales=[0.5, 1.0, 2.0])
    if mode == 'slide':
        test_cfg.update(crop_size=(48, 48), stride=(32, 32))
    model = build(tiny_segmentor(test_cfg=test_cfg)).eval()
    x = images(n=1, h=64, w=96)
    assert_traces(model, x, images(n=1, h=64, w=96, seed=3))


def test_slide_accumulates_high_scales_on_the_fusion_grid():
    """Slide inference keeps scale 2 on the 1.0 image's pixel grid: the
    map of the rescaled image's windows, shrunk (see test_inference.py)."""
    model = build(
        tiny_segmentor(
            test_cfg=dict(
                mode='slide', crop_size=(48, 48), stride=(32, 32),
                scales=[0.5, 1.0, 2.0]))).eval()
    x = images(n=1, h=64, w=96)
    with torch.no_grad():
        outs = model.forward_scales(x)
        full = slide(model.forward_scale, rescale(x, 2.0), (48, 48),
                     (32, 32))
    assert {s: o.logits.shape[-2:] for s, o in outs.items()} == {
        0.5: (32, 48), 1.0: (64, 96), 2.0: (64, 96)}
    assert full.logits.shape[-2:] == (128, 192)
    torch.testing.assert_close(outs[2.0].logits,
                               _resize(full.logits, (64, 96)))
    torch.testing.assert_close(outs[2.0].attention,
                               _resize(full.attention, (64, 96)))


def test_per_scale_outputs_of_a_one_channel_head():
    head = tiny_sep_aspp_head(
        num_classes=2,
        out_channels=1,
        threshold=0.3,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=True))
    model = build(
        tiny_segmentor(
            head=head,
            test_cfg=dict(scales=[0.5, 1.0], fusion='mean',
                          return_scales=True))).eval()
    with torch.no_grad():
        result = model.predict(images(n=1), make_samples(1, 64, 64))[0]
    for out in result.scale_outputs.values():
        probs = out.seg_logits
        assert probs.shape == (1, 64, 64)
        assert 0 <= probs.min() and probs.max() <= 1  # MMSeg's sigmoid
        assert torch.equal(out.pred_sem_seg, (probs > 0.3).to(probs))
