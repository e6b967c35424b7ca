"""Every MMSeg model family becomes an HMSA model by config: tiny versions of
the stock Cityscapes configs load the stock weights with only the attention
branch missing, give the stock logits at scales [1.0], and train on two
scales."""
import os.path as osp

import pytest
import torch

from projects.hmsa.models.attention_branch import read_features
from projects.hmsa_tools.model_families import (
    FAMILIES,
    check_transfer,
    tiny_stock_cfg,
    to_hmsa,
)
from tests.utils import CONFIGS, build, make_samples

#: (family, declared): the segmentor's attention_cfg on the stock head, and
#: the HMSA heads that declare their attention's features.
VARIANTS = [(name, False) for name in FAMILIES] + [('DeepLabV3', True),
                                                   ('DeepLabV3+', True)]


def images(n=2, h=64, w=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, h, w, generator=g)


@pytest.mark.parametrize('name,declared', VARIANTS)
def test_stock_weights_transfer(name, declared):
    stock = tiny_stock_cfg(name)
    result = check_transfer(stock, to_hmsa(stock, declared=declared))
    prefix = 'decode_head.1.attention.' if name == 'OCRNet' \
        else 'decode_head.attention.'
    assert result.missing and all(
        k.startswith(prefix) for k in result.missing), result.missing
    assert 'conv_attn.weight' in ' '.join(result.missing)
    assert result.unexpected == []
    assert result.max_logit > 0
    assert result.max_logit_diff <= 1e-6 * result.max_logit


@pytest.mark.parametrize('name', list(FAMILIES))
def test_two_scale_training_step_and_inference(name):
    torch.manual_seed(0)
    model = build(
        to_hmsa(
            tiny_stock_cfg(name),
            train_cfg=dict(lo_scale=0.5, scale_loss_weight=0.05),
            test_cfg=dict(mode='whole', scales=[0.5, 1.0, 2.0]))).train()
    losses = model.loss(images(), make_samples(2, 64, 64))
    assert {'decode.loss_ce', 'scale_0.5.loss_ce',
            'scale_1.0.loss_ce'} <= set(losses)
    total = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    total.backward()
    grads = {
        n: p.grad
        for n, p in model.named_parameters() if p.grad is not None
    }
    branch = [n for n in grads if n.startswith(model.attention_prefix)]
    assert any(grads[n].abs().sum() > 0 for n in branch)
    assert any(n.startswith('backbone.') for n in grads)
    model.eval()
    with torch.no_grad():
        out = model.predict(images(n=1, h=64, w=96))
    assert out[0].seg_logits.data.shape == (19, 64, 96)


def test_generic_branch_reads_the_classifier_input(monkeypatch):
    model = build(to_hmsa(tiny_stock_cfg('PSPNet'))).eval()
    head = model.decode_head
    x = images()
    with torch.no_grad():
        out = model.forward_scale(x)
        feats = model.extract_feat(x)
        with read_features(head) as read:
            stock = head.forward(feats)
    # what cls_seg is called with, before its dropout
    assert head.attention.reads == 'dropout'
    assert len(read) == 1
    assert read[0].shape[1] == head.conv_seg.in_channels
    torch.testing.assert_close(head.conv_seg(read[0]), stock)
    torch.testing.assert_close(out.logits, stock)
    torch.testing.assert_close(out.attention, head.attention(read[0]))
    # nothing is collected once the pass is over
    with torch.no_grad():
        head.forward(feats)
    assert len(read) == 1
    # a head that classifies twice in one pass has no single input to read
    monkeypatch.setattr(head, 'forward',
                        lambda f: head.cls_seg(read[0]) + head.cls_seg(
                            read[0]))
    with pytest.raises(RuntimeError, match='ran dropout 2 times'):
        model.forward_scale(x)


def test_generic_attention_only_freezes_all_but_the_branch():
    cfg = to_hmsa(
        tiny_stock_cfg('UPerNet'), train_cfg=dict(attention_only=True))
    model = build(cfg)
    model.train()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(
        n.startswith('decode_head.attention.') for n in trainable)
    assert not model.decode_head.training
    assert model.decode_head.attention.training
    losses = model.loss(images(), make_samples(2, 64, 64))
    assert set(losses) == {'decode.loss_ce', 'decode.acc_seg'}
    losses['decode.loss_ce'].backward()
    assert all(p.grad is None for n, p in model.named_parameters()
               if n not in trainable)


def test_norm_eval_keeps_batchnorm_statistics_and_trains_the_rest():
    from torch.nn.modules.batchnorm import _BatchNorm
    cfg = to_hmsa(tiny_stock_cfg('DeepLabV3+'), train_cfg=dict(norm_eval=True))
    model = build(cfg)
    model.train()
    branch = model.decode_head.attention
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    own = [m for m in branch.modules() if isinstance(m, _BatchNorm)]
    assert own and all(m.training for m in own)
    assert not any(m.training for m in norms if all(m is not o for o in own))
    assert model.decode_head.training and model.backbone.training
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    losses = model.loss(images(), make_samples(2, 64, 64))
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    optimizer.step()
    after = model.state_dict()
    stats = [
        k for k in before if k.endswith(('running_mean', 'running_var'))
        and not k.startswith('decode_head.attention.')
    ]
    assert stats and all(torch.equal(before[k], after[k]) for k in stats)
    # the weights still train: the classifier, the branch, BatchNorm's own
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert 'decode_head.conv_seg.weight' in changed
    assert any(k.startswith('decode_head.attention.') for k in changed)
    assert any(k.endswith('bn.weight') for k in changed)
    # without it, training moves the statistics
    model = build(to_hmsa(tiny_stock_cfg('DeepLabV3+'))).train()
    model.loss(images(), make_samples(2, 64, 64))
    moved = model.state_dict()
    assert any(not torch.equal(before[k], moved[k]) for k in stats)


def test_segmentor_attention_cfg_refused_on_a_head_with_its_own():
    cfg = to_hmsa(tiny_stock_cfg('DeepLabV3+'), declared=True)
    cfg['attention_cfg'] = dict()
    with pytest.raises(ValueError, match='attention branch of its own'):
        build(cfg)


def test_declared_head_keeps_reading_its_own_features():
    stock = tiny_stock_cfg('DeepLabV3+')
    generic = build(to_hmsa(stock))
    declared = build(to_hmsa(stock, declared=True))
    head = stock['decode_head']
    # the generic branch reads the classifier's input (sep_bottleneck's
    # output); the DeepLabV3+ head's reads the concatenated decoder
    # features (ASPP bottleneck + c1)
    first = 'attention.convs.0.conv.weight'
    assert generic.state_dict()[f'decode_head.{first}'].shape[1] == \
        head['channels']
    assert declared.state_dict()[f'decode_head.{first}'].shape[1] == \
        head['channels'] + head['c1_channels']


def test_unknown_family_and_segmentor():
    with pytest.raises(ValueError, match='unknown model family'):
        tiny_stock_cfg('nope')
    with pytest.raises(ValueError, match='no HMSA version'):
        to_hmsa(dict(type='Other'))
    with pytest.raises(ValueError, match='no HMSA head of its own'):
        to_hmsa(tiny_stock_cfg('FCN'), declared=True)


def test_demo_training_run(tiny_data, tmp_path):
    from projects.hmsa_tools.model_families import demo_training_run
    model = to_hmsa(
        tiny_stock_cfg('OCRNet'),
        test_cfg=dict(mode='whole', scales=[0.5, 1.0, 2.0]))
    config = osp.join(CONFIGS, 'hrnet_ocr', 'hmsa_ocrnet_hr-tiny_demo.py')
    run = demo_training_run(
        model, config, tiny_data, str(tmp_path), iters=2, batch_size=2,
        crop_size=(64, 128))
    assert run.iters == 2
    assert run.first_loss > 0 and run.last_loss > 0
    assert run.seconds_per_iter > 0
    assert 0 <= run.miou <= 100
    assert (tmp_path / 'iter_2.pth').is_file()
