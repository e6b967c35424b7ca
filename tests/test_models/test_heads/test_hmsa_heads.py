"""HMSA decode heads: shapes, attention range, MMSeg compatibility."""
import pytest
import torch
from mmseg.registry import MODELS

from projects.hmsa.models.attention_branch import read_features
from tests.utils import NUM_CLASSES, make_samples, tiny_sep_aspp_head


def features(n=2, size=32):
    # What the tiny MobileNetV2-D8 gives for a size x size image.
    g = torch.Generator().manual_seed(0)
    return [
        torch.randn(n, 8, size // 4, size // 4, generator=g),
        torch.randn(n, 8, size // 8, size // 8, generator=g),
        torch.randn(n, 24, size // 8, size // 8, generator=g),
        torch.randn(n, 80, size // 8, size // 8, generator=g),
    ]


def build_head(**kwargs):
    head = MODELS.build(tiny_sep_aspp_head(**kwargs))
    head.init_weights()
    return head


def forward_scale(head, feats):
    """The head's logits, and its branch's attention from what it read."""
    with read_features(head) as read:
        logits = head(feats)
    assert len(read) == 1
    if head.attention.reads_higher:
        return logits, None
    return logits, head.attention.attend(read[0], logits)


@pytest.mark.parametrize('attention_type',
                         ['bottleneck', 'separable', 'paper'])
def test_sep_aspp_head_shapes(attention_type):
    torch.manual_seed(0)  # random weights and features: the same each run
    head = build_head(
        attention_cfg=dict(type=attention_type, channels=8)).eval()
    logits, attention = forward_scale(head, features())
    assert logits.shape == (2, NUM_CLASSES, 8, 8)
    assert attention.shape == (2, 1, 8, 8)
    assert (attention > 0).all() and (attention < 1).all()
    # the branch reads the decoder's concatenated ASPP and c1 features
    assert head.attention.reads == 'sep_bottleneck'
    with read_features(head) as read:
        head(features())
    assert read[0].shape[1] == 16 + 8  # channels + c1_channels
    # The last layer starts near zero: attention starts close to 0.5.
    assert (attention - 0.5).abs().max() < 0.1


def test_attention_branch_is_the_only_new_parameter_set():
    stock = MODELS.build(tiny_sep_aspp_head(hmsa=False))
    hmsa = build_head()
    stock_keys = set(stock.state_dict())
    hmsa_keys = set(hmsa.state_dict())
    assert stock_keys <= hmsa_keys
    new = hmsa_keys - stock_keys
    assert new and all(k.startswith('attention.') for k in new)


def test_logits_equal_stock_head_with_same_weights():
    stock = MODELS.build(tiny_sep_aspp_head(hmsa=False))
    stock.init_weights()
    hmsa = build_head()
    missing, unexpected = hmsa.load_state_dict(
        stock.state_dict(), strict=False)
    assert not unexpected and all(k.startswith('attention.') for k in missing)
    stock.eval(), hmsa.eval()
    feats = features()
    torch.testing.assert_close(hmsa(feats), stock(feats), rtol=0, atol=0)


def test_branch_types_and_defaults():
    count = lambda h: sum(  # noqa: E731
        p.numel() for p in h.attention.parameters())
    default = MODELS.build(
        {k: v
         for k, v in tiny_sep_aspp_head().items() if k != 'attention_cfg'})
    assert default.attention.type == 'bottleneck'
    assert default.attention.channels == 64
    paper = build_head(attention_cfg=dict(type='paper'))
    assert paper.attention.channels == 256
    # paper: two full 3x3 convs; bottleneck: 1x1 reduction + one 3x3 conv
    kernels = [
        m.kernel_size for m in paper.attention.modules()
        if isinstance(m, torch.nn.Conv2d)
    ]
    assert kernels == [(3, 3), (3, 3), (1, 1)]
    kernels = [
        m.kernel_size for m in default.attention.modules()
        if isinstance(m, torch.nn.Conv2d)
    ]
    assert kernels == [(1, 1), (3, 3), (1, 1)]
    assert count(paper) > 10 * count(default)
    # the paper's last 1x1 conv has no bias (NVIDIA's make_attn_head)
    assert paper.attention.conv_attn.bias is None
    assert default.attention.conv_attn.bias is not None
    with_bias = build_head(attention_cfg=dict(type='paper', bias=True))
    assert with_bias.attention.conv_attn.bias is not None
    # every conv before it is followed by BN, so has no bias either
    assert all(m.bias is None for m in paper.attention.convs.modules()
               if isinstance(m, torch.nn.Conv2d))


def test_bad_attention_type():
    with pytest.raises(ValueError, match='attention branch type'):
        build_head(attention_cfg=dict(type='transformer'))


def test_head_loss_keys():
    head = build_head().train()
    losses = head.loss(features(), make_samples(2, 32, 32), dict())
    assert set(losses) == {'loss_ce', 'acc_seg'}
    assert losses['loss_ce'] > 0


def test_aspp_head_variant():
    head = MODELS.build(
        dict(
            type='HMSAASPPHead',
            in_channels=80,
            in_index=3,
            channels=16,
            dilations=(1, 2),
            num_classes=NUM_CLASSES,
            attention_cfg=dict(channels=8)))
    head.init_weights()
    head.eval()
    logits, attention = forward_scale(head, features())
    assert logits.shape == (2, NUM_CLASSES, 4, 4)
    assert attention.shape == (2, 1, 4, 4)
    assert head.attention.reads == 'dropout'  # the classifier's input
    stock = MODELS.build(
        dict(
            type='ASPPHead',
            in_channels=80,
            in_index=3,
            channels=16,
            dilations=(1, 2),
            num_classes=NUM_CLASSES)).eval()
    head.load_state_dict(stock.state_dict(), strict=False)
    torch.testing.assert_close(head(features()), stock(features()))


@pytest.mark.parametrize('inputs,channels', [
    (['features'], 16 + 8),
    (['probs'], NUM_CLASSES),
    (['features', 'probs'], 24 + NUM_CLASSES),
    (['probs', 'higher'], 2 * NUM_CLASSES),
    ('higher', NUM_CLASSES),
])
def test_attention_inputs(inputs, channels):
    head = build_head(
        attention_cfg=dict(type='bottleneck', channels=8,
                           inputs=inputs)).eval()
    branch = head.attention
    assert branch.convs[0].conv.in_channels == channels
    logits, attention = forward_scale(head, features())
    if branch.reads_higher:
        # computed during fusion, from the logits and the higher scales'
        higher = torch.randn_like(logits)
        a = branch.attend_higher(logits, higher)
        assert a.shape == (2, 1, 8, 8) and ((a > 0) & (a < 1)).all()
        # it reads exactly the two probability maps, in that order
        parts = [higher.softmax(1)]
        if 'probs' in inputs:
            parts.insert(0, logits.softmax(1))
        torch.testing.assert_close(a, branch(torch.cat(parts, 1)))
        with pytest.raises(ValueError, match='attend_higher'):
            branch.attend(None, logits)
    else:
        assert attention.shape == (2, 1, 8, 8)


@pytest.mark.parametrize('inputs,match', [
    (['features', 'higher'], 'cannot also'),
    (['colour'], 'distinct entries'),
    ([], 'non-empty'),
    (['probs', 'probs'], 'distinct'),
])
def test_bad_attention_inputs(inputs, match):
    with pytest.raises(ValueError, match=match):
        build_head(attention_cfg=dict(inputs=inputs))
