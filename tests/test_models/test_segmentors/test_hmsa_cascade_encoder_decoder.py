"""HMSACascadeEncoderDecoder (OCRNet): the attention reads the OCR head's
features, the soft-region logits are fused with the same attention in
training, and inference works as for HMSAEncoderDecoder."""
import pytest
import torch
import torch.nn.functional as F

from projects.hmsa.models import CascadeScaleOutput, hierarchical_fuse
from projects.hmsa.models.attention_branch import read_features
from projects.hmsa_tools.model_families import tiny_stock_cfg, to_hmsa
from tests.utils import build, grad_receivers, make_samples


def images(n=2, h=64, w=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, h, w, generator=g)


def ocrnet(train_cfg=None, test_cfg=None, **attention):
    return build(
        to_hmsa(
            tiny_stock_cfg('OCRNet'),
            attention_cfg=attention,
            train_cfg=train_cfg or {},
            test_cfg=test_cfg or dict(mode='whole')))


def test_attention_reads_the_ocr_features():
    model = ocrnet().eval()
    ocr = model.decode_head[1]
    assert model.final_head is ocr
    assert model.attention_prefix == 'decode_head.1.attention.'
    x = images()
    feats = model.extract_feat(x)
    with torch.no_grad():
        out = model.forward_scale(x)
        regions = model.decode_head[0].forward(feats)
        with read_features(ocr) as read:
            stock = ocr.forward(feats, regions)
    # the object-contextual features, the OCR classifier's input
    assert len(read) == 1 and read[0].shape[1] == ocr.channels
    torch.testing.assert_close(ocr.conv_seg(read[0]), stock)
    assert isinstance(out, CascadeScaleOutput)
    torch.testing.assert_close(out.logits, stock)
    torch.testing.assert_close(out.stage_logits[0], regions)
    torch.testing.assert_close(out.attention, ocr.attention(read[0]))
    assert out.attention.shape == (2, 1, *stock.shape[-2:])


def test_single_scale_forward_is_mmseg_cascade():
    model = ocrnet().eval()
    x = images()
    with torch.no_grad():
        got = model.single_scale_forward(x)
        feats = model.extract_feat(x)
        ref = model.decode_head[1](feats, model.decode_head[0](feats))
    torch.testing.assert_close(got, ref)


def test_training_fuses_soft_regions_with_the_same_attention():
    model = ocrnet(train_cfg=dict(lo_scale=0.5,
                                  scale_loss_weight=0.05)).eval()
    x, samples = images(), make_samples(2, 64, 64)
    losses = model.loss(x, samples)
    assert set(losses) == {
        'decode.loss_ce', 'decode.acc_seg', 'decode.stage0.loss_ce',
        'decode.stage0.acc_seg', 'scale_0.5.loss_ce', 'scale_0.5.acc_seg',
        'scale_1.0.loss_ce', 'scale_1.0.acc_seg'
    }
    x_lo = F.interpolate(x, size=(32, 32), mode='bilinear',
                         align_corners=False)
    lo = model.forward_scale(x_lo)
    hi = model.forward_scale(x)

    def up(t):
        return F.interpolate(t, size=hi.logits.shape[-2:], mode='bilinear',
                             align_corners=False)

    a = lo.attention
    fused = up(a * lo.logits) + (1 - up(a)) * hi.logits
    regions = up(a * lo.stage_logits[0]) + (1 - up(a)) * hi.stage_logits[0]
    ocr, fcn = model.decode_head[1], model.decode_head[0]
    torch.testing.assert_close(losses['decode.loss_ce'],
                               ocr.loss_by_feat(fused, samples)['loss_ce'])
    expected = fcn.loss_by_feat(regions, samples)['loss_ce']
    torch.testing.assert_close(losses['decode.stage0.loss_ce'], expected)
    # the soft-region head's own loss weight (0.4 in MMSeg's OCRNet) applies
    assert fcn.loss_decode.loss_weight == pytest.approx(0.4)
    plain = F.cross_entropy(
        F.interpolate(regions, size=(64, 64), mode='bilinear'),
        torch.stack([s.gt_sem_seg.data[0] for s in samples]),
        ignore_index=255)
    torch.testing.assert_close(expected, 0.4 * plain)


def test_two_pairs_weigh_the_soft_region_losses_too():
    model = ocrnet(
        train_cfg=dict(scale_pairs=[[0.5, 1.0], [1.0, 2.0]])).eval()
    losses = model.loss(images(), make_samples(2, 64, 64))
    single = ocrnet(train_cfg=dict(scale_pairs=[[0.5, 1.0]])).eval()
    single.load_state_dict(model.state_dict())
    alone = single.loss(images(), make_samples(2, 64, 64))
    torch.testing.assert_close(losses['decode_0.5-1.stage0.loss_ce'],
                               alone['decode.stage0.loss_ce'] / 2)


def test_detached_scales_cut_the_soft_regions_from_the_fused_loss_too():
    model = ocrnet(train_cfg=dict(detach_scales=True,
                                  scale_loss_weight=1)).eval()
    losses = model.loss(images(), make_samples(2, 64, 64))
    fused = [k for k in losses
             if k.startswith('decode.') and k.endswith('loss_ce')]
    assert 'decode.stage0.loss_ce' in fused
    grads = grad_receivers(model, sum(losses[k] for k in fused))
    assert grads and all(
        n.startswith('decode_head.1.attention.') for n in grads)
    own = grad_receivers(
        model, sum(v for k, v in losses.items()
                   if k.startswith('scale_') and 'loss' in k))
    # the final logits' own loss trains both stages and the trunk
    for prefix in ('backbone.', 'decode_head.0.', 'decode_head.1.conv_seg'):
        assert any(n.startswith(prefix) for n in own), prefix


@pytest.mark.parametrize('train_cfg,inputs', [
    (dict(attention_only=True), ['features']),
    (dict(attention_only=True, fusion='explicit',
          scale_pairs=[[0.5, 1.0]]), ['features']),
    (dict(attention_only=True, scale_pairs=[[0.5, 1.0, 2.0]]),
     ['probs', 'higher']),
])
def test_attention_only_trains_exactly_the_branch(train_cfg, inputs):
    model = ocrnet(train_cfg=train_cfg, inputs=inputs)
    model.train()
    prefix = 'decode_head.1.attention.'
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(prefix) for n in trainable)
    assert not model.decode_head.training
    assert model.decode_head[1].attention.training
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optim = torch.optim.SGD(model.parameters(), lr=1.0)
    losses = model.loss(images(), make_samples(2, 64, 64))
    fused = [k for k in losses if k.endswith('loss_ce')]
    assert any('stage0' in k for k in fused)
    assert not any(k.startswith('scale_') for k in losses)
    sum(losses[k] for k in fused).backward()
    optim.step()
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith(prefix) for k in changed)


@pytest.mark.parametrize('fusion', ['attention', 'mean', 'max'])
@pytest.mark.parametrize('mode', ['whole', 'slide'])
def test_inference_each_fusion_mode_and_flip(fusion, mode):
    test_cfg = dict(mode=mode, scales=[0.5, 1.0, 2.0], fusion=fusion,
                    flip=True, return_scales=True)
    if mode == 'slide':
        test_cfg.update(crop_size=(64, 64), stride=(48, 48))
    model = ocrnet(test_cfg=test_cfg).eval()
    x = images(h=64, w=96)
    samples = make_samples(2, 64, 96, pad=(0, 16, 0, 8), ori=(28, 40))
    with torch.no_grad():
        results = model.predict(x, samples)
    for r in results:
        assert r.seg_logits.data.shape == (19, 28, 40)
        assert set(r.scale_outputs) == {0.5, 1.0, 2.0}
        assert r.scale_outputs[0.5].attention.shape == (1, 28, 40)


@pytest.mark.parametrize('grid', ['feature', 'finest'])
def test_whole_inference_is_the_chain_and_tensor_mode_is_fused(grid):
    model = ocrnet(
        test_cfg=dict(scales=[0.5, 1.0, 2.0], fusion_grid=grid)).eval()
    x = images(h=64, w=64)
    with torch.no_grad():
        got = model.inference(x, [dict(pad_shape=(64, 64))] * 2)
        tensor = model(x, mode='tensor')
        outs = {}
        for s in (0.5, 1.0, 2.0):
            xs = F.interpolate(x, scale_factor=s, mode='bilinear') \
                if s != 1.0 else x
            outs[s] = model.forward_scale(xs)
    ref = F.interpolate(hierarchical_fuse(outs, finest=grid == 'finest'),
                        size=(64, 64),
                        mode='bilinear', align_corners=False)
    torch.testing.assert_close(got, ref)
    torch.testing.assert_close(tensor, got)


def test_stock_cascade_without_branch_fuses_mean_only():
    model = build(
        to_hmsa(tiny_stock_cfg('OCRNet'),
                test_cfg=dict(scales=[0.5, 1.0], fusion='mean')) | dict(
                    attention_cfg=None)).eval()
    assert not model.with_attention
    with torch.no_grad():
        out = model.predict(images())
    assert out[0].seg_logits.data.shape == (19, 64, 64)
    with pytest.raises(ValueError, match='attention branch'):
        model.loss(images(), make_samples(2, 64, 64))


def test_cascade_needs_two_stages():
    cfg = to_hmsa(tiny_stock_cfg('OCRNet'))
    cfg['num_stages'] = 1
    with pytest.raises(ValueError, match='num_stages'):
        build(cfg)


def test_stock_ocrnet_checkpoint_is_explained(tmp_path):
    from mmengine.runner import load_checkpoint, save_checkpoint

    from tests.test_models.test_stock_transfer import logged
    stock = build(tiny_stock_cfg('OCRNet'))
    path = str(tmp_path / 'ocrnet.pth')
    save_checkpoint({'state_dict': stock.state_dict(), 'meta': {}}, path)
    model = ocrnet()
    with logged() as messages:
        load_checkpoint(model, path, logger='current')
    text = '\n'.join(messages)
    assert 'no attention branch' in text
    assert 'under decode_head.1.attention' in text
    assert 'predicts' not in text  # the class count is read off the OCR head
    for key, value in stock.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
