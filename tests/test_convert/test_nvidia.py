"""The NVIDIA checkpoint converter, on state dicts with NVIDIA's names and
shapes (tests/test_convert/nvidia_reference.py) and, for DeepLabV3+ and
HRNet-OCR, on logits: converted weights in configs/nvidia's models give the
logits of NVIDIA's forward, written from their code, at scales 0.5, 1, 2."""
import copy
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from projects.hmsa.convert import (
    ARCHS,
    ConversionError,
    convert_checkpoint,
    convert_state_dict,
    target_state_dict,
)
from projects.hmsa.models import AttentionBranch
from tests.test_convert.nvidia_reference import (
    NvidiaMscaleOCR,
    NvidiaMscaleV3Plus,
    NvidiaOCRBlock,
    fake_state_dict,
    nvidia_hrnet_ocr_shapes,
    randomise,
)
from tests.utils import ROOT, build, load_tool

NUM_CLASSES = 5
NORM = dict(type='BN', requires_grad=True)
CONFIG = osp.join(ROOT, 'configs', 'nvidia',
                  'nvidia-mscale_deeplabv3plus_r50-d8_cityscapes-1024x2048.py')
# a ResNet-50 a quarter as wide, every decoder width 16, 8 fine channels
BASE, CH, FINE = 16, 16, 8


def tiny_v3plus_cfg() -> dict:
    """configs/nvidia's model at the tiny width of :func:`tiny_nvidia`."""
    model = copy.deepcopy(Config.fromfile(CONFIG).model.to_dict())
    model['backbone'].update(stem_channels=BASE, base_channels=BASE,
                             norm_cfg=NORM)
    model['decode_head'].update(
        in_channels=BASE * 32, channels=CH, c1_in_channels=BASE * 4,
        c1_channels=FINE, num_classes=NUM_CLASSES, norm_cfg=NORM,
        attention_cfg=dict(type='paper', channels=CH, num_convs=2))
    model.pop('_delete_', None)
    for part in ('backbone', 'decode_head'):
        model[part].pop('_delete_', None)
    return model


def tiny_nvidia() -> NvidiaMscaleV3Plus:
    torch.manual_seed(0)
    return randomise(NvidiaMscaleV3Plus(
        NUM_CLASSES, base=BASE, aspp_ch=CH, fine_ch=FINE, bot_ch=CH)).eval()


def nvidia_checkpoint(net) -> dict:
    """What their train.py saves (DataParallel's ``module.`` included)."""
    return dict(arch='mscale.DeepV3R50', epoch=3, mean_iu=0.5,
                num_classes=NUM_CLASSES, command='--arch mscale.DeepV3R50',
                state_dict={f'module.{k}': v
                            for k, v in net.state_dict().items()})


def test_reference_has_nvidias_names():
    """Names read off their code, literally."""
    names = set(nvidia_checkpoint(tiny_nvidia())['state_dict'])
    assert {
        'module.backbone.layer0.0.weight', 'module.backbone.layer0.1.bias',
        'module.backbone.layer3.0.downsample.0.weight',
        'module.backbone.layer4.2.bn3.running_var',
        'module.aspp.img_conv.0.weight', 'module.aspp.img_conv.1.weight',
        'module.aspp.features.0.0.weight', 'module.aspp.features.3.1.bias',
        'module.bot_fine.weight', 'module.bot_aspp.weight',
        'module.final.0.weight', 'module.final.4.running_mean',
        'module.final.6.weight', 'module.scale_attn.conv0.weight',
        'module.scale_attn.bn1.weight', 'module.scale_attn.conv2.weight'
    } <= names
    assert not any('fc.' in n or 'final.6.bias' in n for n in names)


def test_deeplabv3plus_converts_every_tensor():
    net = tiny_nvidia()
    model = build(tiny_v3plus_cfg())
    target = model.state_dict()
    ckpt, report = convert_checkpoint(nvidia_checkpoint(net), target)
    state = ckpt['state_dict']
    assert list(state) == list(target)
    assert all(state[k].shape == target[k].shape for k in target)
    assert report.mapped == len(net.state_dict())  # nothing left over
    # the paper branch has no bias on its last conv, as NVIDIA's; their
    # DeepLabV3+ classifier has none either
    assert sorted(report.zero_filled) == ['decode_head.conv_seg.bias']
    assert report.attention_prefix == 'decode_head.attention'
    assert ckpt['meta'] == dict(
        nvidia_arch='mscale.DeepV3R50',
        converted_from='NVIDIA/semantic-segmentation', nvidia_epoch=3.0,
        nvidia_mean_iu=0.5, nvidia_num_classes=float(NUM_CLASSES))
    ours, theirs = state['backbone.layer3.1.bn2.running_var'], \
        net.backbone.layer3[1].bn2.running_var
    assert torch.equal(ours, theirs)
    missing, unexpected = model.load_state_dict(state, strict=True)
    assert not missing and not unexpected


@pytest.mark.parametrize('scales', [(0.5, 1.0, 2.0), (1.0, )])
def test_deeplabv3plus_gives_nvidias_logits(scales):
    net = tiny_nvidia()
    model = build(tiny_v3plus_cfg()).eval()
    ckpt, _ = convert_checkpoint(nvidia_checkpoint(net), model.state_dict())
    model.load_state_dict(ckpt['state_dict'], strict=True)
    model.test_cfg.scales = list(scales)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 75, 101, generator=g)  # floor != round at 0.5
    with torch.no_grad():
        theirs = net.nscale_forward(x, scales)
        ours = model(x, mode='tensor')
    assert ours.shape == theirs.shape == (2, NUM_CLASSES, 75, 101)
    rel = float((ours - theirs).abs().max() / theirs.abs().max())
    assert rel <= 1e-4, rel
    assert theirs.abs().max() > 0.1  # not a vacuous comparison


def test_hrnet_ocr_names_and_shapes_fill_mmsegs_ocrnet_and_the_branch():
    """MscaleOCR -> MMSeg's OCRNet (CascadeEncoderDecoder: FCN head, OCR
    head) names and shapes, plus an attention branch reading the OCR
    features; tiny HRNet widths."""
    widths, mid, key, bot = (4, 8, 16, 32), 24, 12, 16
    shapes = nvidia_hrnet_ocr_shapes(
        NUM_CLASSES, stage1_channels=8, widths=widths, num_blocks=2,
        num_modules=(1, 2, 1), mid_ch=mid, key_ch=key, bot_ch=bot)
    nvidia = fake_state_dict(shapes)
    extra = dict(
        stage1=dict(num_modules=1, num_branches=1, block='BOTTLENECK',
                    num_blocks=(2, ), num_channels=(8, )),
        stage2=dict(num_modules=1, num_branches=2, block='BASIC',
                    num_blocks=(2, 2), num_channels=widths[:2]),
        stage3=dict(num_modules=2, num_branches=3, block='BASIC',
                    num_blocks=(2, 2, 2), num_channels=widths[:3]),
        stage4=dict(num_modules=1, num_branches=4, block='BASIC',
                    num_blocks=(2, 2, 2, 2), num_channels=widths))
    heads = dict(in_channels=list(widths), in_index=(0, 1, 2, 3),
                 input_transform='resize_concat', norm_cfg=NORM,
                 align_corners=False, num_classes=NUM_CLASSES,
                 dropout_ratio=-1)
    stock = dict(
        type='CascadeEncoderDecoder', num_stages=2,
        backbone=dict(type='HRNet', extra=extra, norm_cfg=NORM),
        decode_head=[
            dict(type='FCNHead', channels=sum(widths), kernel_size=1,
                 num_convs=1, concat_input=False, **heads),
            dict(type='OCRHead', channels=mid, ocr_channels=key, **heads)
        ])
    target = target_state_dict(stock)
    branch = AttentionBranch(mid, channels=bot, type='paper', num_convs=2)
    target.update({f'decode_head.1.attention.{k}': v
                   for k, v in branch.state_dict().items()})
    ckpt, report = convert_checkpoint(
        dict(arch='ocrnet.HRNet_Mscale', state_dict=nvidia), target)
    state = ckpt['state_dict']
    assert list(state) == list(target)
    assert all(state[k].shape == target[k].shape for k in target)
    assert report.mapped == len(nvidia) - 2  # two biases folded
    assert report.zero_filled == []  # the paper branch has no last bias
    # conv bias before BN folded into the running mean
    mean = state['decode_head.1.bottleneck.bn.running_mean']
    torch.testing.assert_close(
        mean, nvidia['module.ocr.conv3x3_ocr.1.0.running_mean'] -
        nvidia['module.ocr.conv3x3_ocr.0.bias'])
    assert torch.equal(
        state['decode_head.1.object_context_block.key_project.1.conv.weight'],
        nvidia['module.ocr.ocr_distri_head.object_context_block.f_object.2.'
               'weight'])
    # at NVIDIA's own width the table has their released model's size
    full = nvidia_hrnet_ocr_shapes(19)
    assert full['ocr.aux_head.0.weight'] == (720, 720, 1, 1)
    assert full['scale_attn.conv0.weight'] == (256, 512, 3, 3)


def test_refusals():
    net = tiny_nvidia()
    target = build(tiny_v3plus_cfg()).state_dict()
    ckpt = nvidia_checkpoint(net)
    with pytest.raises(ConversionError, match='unknown NVIDIA arch'):
        convert_checkpoint(ckpt, target, 'deepv3.DeepV3PlusW38')
    bare = dict(ckpt['state_dict'])
    with pytest.raises(ConversionError, match='does not say which'):
        convert_checkpoint(bare, target)
    convert_checkpoint(bare, target, 'mscale.DeepV3R50')  # a bare dict
    extra = dict(bare, **{'module.edge_conv.weight': torch.zeros(1)})
    with pytest.raises(ConversionError, match='no rule of mscale.DeepV3R50'):
        convert_state_dict(extra, target, 'mscale.DeepV3R50')
    short = {k: v for k, v in bare.items() if 'scale_attn.conv0' not in k}
    with pytest.raises(ConversionError, match='not in the checkpoint'):
        convert_checkpoint(short, target, 'mscale.DeepV3R50')
    wide = build(dict(tiny_v3plus_cfg(), decode_head=dict(
        tiny_v3plus_cfg()['decode_head'], num_classes=7))).state_dict()
    with pytest.raises(ConversionError, match='shapes differ'):
        convert_checkpoint(ckpt, wide)
    no_branch = {k: v for k, v in target.items() if 'attention' not in k}
    with pytest.raises(ConversionError, match='exactly one attention'):
        convert_checkpoint(ckpt, no_branch)
    assert set(ARCHS) == {'mscale.DeepV3R50', 'ocrnet.HRNet_Mscale'}


def test_tool_writes_a_checkpoint_the_model_loads(tmp_path, capsys):
    net = tiny_nvidia()
    src, out = tmp_path / 'nvidia.pth', tmp_path / 'ours.pth'
    torch.save(nvidia_checkpoint(net), src)
    config = tmp_path / 'tiny.py'
    config.write_text(
        f'_base_ = [{CONFIG!r}]\nmodel = {tiny_v3plus_cfg()!r}\n')
    load_tool('convert_nvidia').main([str(src), str(config), str(out)])
    printed = capsys.readouterr().out
    assert 'mscale.DeepV3R50: ' in printed and '1 zero-filled' in printed
    saved = torch.load(out, weights_only=True)
    model = build(tiny_v3plus_cfg())
    model.load_state_dict(saved['state_dict'], strict=True)
    assert saved['meta']['nvidia_arch'] == 'mscale.DeepV3R50'


def test_tool_refuses_with_one_line(tmp_path, capsys):
    src = tmp_path / 'nvidia.pth'
    torch.save(dict(arch='mscale.DeepV3R50', state_dict={
        'module.bogus.weight': torch.zeros(1)}), src)
    tool = load_tool('convert_nvidia')
    with pytest.raises(SystemExit) as exit_info:
        from projects.hmsa_tools.cli import run_tool
        run_tool(lambda: tool.main(
            [str(src), CONFIG, str(tmp_path / 'out.pth')]))
    assert exit_info.value.code == 1
    assert 'no rule of mscale.DeepV3R50 maps' in capsys.readouterr().err


def test_hrnet_ocr_heads_give_nvidias_logits_and_attention():
    """Their OCR block (aux head, OCR, classifier) and attention head,
    converted into MMSeg's FCN and OCR heads and an attention branch, on
    the same trunk features: equal outputs, conv biases folded. (The HRNet
    trunk's names are identical in both; its forward is not compared.)"""
    widths, mid, key, bot = (4, 8, 16, 32), 24, 12, 16
    torch.manual_seed(0)
    block = randomise(NvidiaOCRBlock(sum(widths), NUM_CLASSES, mid, key,
                                     bot)).eval()
    for conv in (block.conv3x3_ocr[0], block.aux_head[0]):
        conv.bias.data.normal_()  # folding must matter
    heads = dict(in_channels=list(widths), in_index=(0, 1, 2, 3),
                 input_transform='resize_concat', norm_cfg=NORM,
                 align_corners=False, num_classes=NUM_CLASSES,
                 dropout_ratio=-1)
    fcn = build(dict(type='FCNHead', channels=sum(widths), kernel_size=1,
                     num_convs=1, concat_input=False, **heads))
    ocr = build(dict(type='OCRHead', channels=mid, ocr_channels=key,
                     **heads))
    branch = AttentionBranch(mid, channels=bot, type='paper', num_convs=2)
    target = {f'decode_head.0.{k}': v for k, v in fcn.state_dict().items()}
    target.update(
        {f'decode_head.1.{k}': v for k, v in ocr.state_dict().items()})
    target.update({f'decode_head.1.attention.{k}': v
                   for k, v in branch.state_dict().items()})
    theirs = {f'ocr.{k}': v for k, v in block.state_dict().items()
              if not k.startswith('scale_attn.')}
    theirs.update({k: v for k, v in block.state_dict().items()
                   if k.startswith('scale_attn.')})
    state, report = convert_state_dict(theirs, target, 'ocrnet.HRNet_Mscale')
    assert sorted(report.folded) == ['ocr.aux_head.0.bias',
                                     'ocr.conv3x3_ocr.0.bias']
    for prefix, module in (('decode_head.0.', fcn), ('decode_head.1.', ocr),
                           ('decode_head.1.attention.', branch)):
        module.load_state_dict({
            k[len(prefix):]: v for k, v in state.items()
            if k.startswith(prefix) and (module is branch
                                         or '.attention.' not in k)
        }, strict=True)
        module.eval()
    g = torch.Generator().manual_seed(2)
    feats = [torch.randn(2, c, 16 // 2**i, 24 // 2**i, generator=g)
             for i, c in enumerate(widths)]
    with torch.no_grad():
        high = ocr._transform_inputs(feats)  # their trunk's upsample+concat
        cls, aux, attn = block(high)
        our_aux = fcn(feats)
        x = ocr.bottleneck(high)
        context = ocr.spatial_gather_module(x, our_aux)
        ocr_feats = ocr.object_context_block(x, context)
        our_cls, our_attn = ocr.cls_seg(ocr_feats), branch(ocr_feats)
    for ours, ref in ((our_aux, aux), (our_cls, cls), (our_attn, attn)):
        assert float((ours - ref).abs().max() / ref.abs().max()) <= 1e-4
    assert torch.equal(ocr(feats, our_aux), our_cls)


# ------------------------------------------------- HRNet-OCR (MscaleOCR)
OCR_CONFIG = osp.join(ROOT, 'configs', 'nvidia',
                      'nvidia-mscale_ocrnet_hr48_cityscapes-1024x2048.py')
# a tiny HRNet (2 blocks a branch) and OCR block: stage-1 planes, branch
# widths, stage 2-4 modules, OCR mid and key channels, attention channels
OCR_TINY = dict(stage1_channels=8, widths=(4, 8, 16, 32), num_blocks=2,
                num_modules=(1, 2, 1), mid_ch=24, key_ch=12, bot_ch=16)


def tiny_ocr_cfg() -> dict:
    """configs/nvidia's HRNet-OCR model at the widths of ``OCR_TINY``."""
    t = OCR_TINY
    model = copy.deepcopy(Config.fromfile(OCR_CONFIG).model.to_dict())
    widths, n = list(t['widths']), t['num_blocks']
    extra = model['backbone']['extra']
    extra['stage1'].update(num_blocks=(n, ),
                           num_channels=(t['stage1_channels'], ))
    for stage, modules in zip((2, 3, 4), t['num_modules']):
        extra[f'stage{stage}'].update(num_modules=modules,
                                      num_blocks=(n, ) * stage,
                                      num_channels=tuple(widths[:stage]))
    model['backbone']['norm_cfg'] = NORM
    fcn, ocr = model['decode_head']
    for head in (fcn, ocr):
        head.update(in_channels=widths, num_classes=NUM_CLASSES,
                    norm_cfg=NORM)
    fcn['channels'] = sum(widths)
    ocr.update(channels=t['mid_ch'], ocr_channels=t['key_ch'])
    model['attention_cfg']['channels'] = t['bot_ch']
    return model


def test_hrnet_ocr_config_is_the_paper_model_at_nvidias_widths():
    """configs/nvidia's HRNet-OCR builds every tensor of MscaleOCR at their
    full width (their aux_head 720 channels, OCR 512/256, attention 256)
    and infers as their nscale_forward does."""
    cfg = Config.fromfile(OCR_CONFIG).model
    assert cfg.type == 'HMSACascadeEncoderDecoder'
    assert dict(cfg.test_cfg) == dict(
        mode='whole', scales=[0.5, 1.0, 2.0], fusion='attention',
        fusion_grid='image', scale_rounding='floor')
    nvidia = fake_state_dict(nvidia_hrnet_ocr_shapes(19))
    target = target_state_dict(cfg)
    ckpt, report = convert_checkpoint(
        dict(arch='ocrnet.HRNet_Mscale', state_dict=nvidia), target)
    assert list(ckpt['state_dict']) == list(target)
    assert report.mapped == len(nvidia) - 2 == len(target)
    assert report.zero_filled == []
    assert report.attention_prefix == 'decode_head.1.attention'
    assert target['decode_head.1.attention.conv_attn.weight'].shape == (
        1, 256, 1, 1)


def test_hrnet_ocr_converted_checkpoint_loads_and_infers(tmp_path, capsys):
    """The tool converts a (tiny) MscaleOCR checkpoint into configs/nvidia's
    HRNet-OCR model: strict load, inference at 0.5, 1 and 2."""
    src, out = tmp_path / 'nvidia.pth', tmp_path / 'ours.pth'
    nvidia = fake_state_dict(nvidia_hrnet_ocr_shapes(NUM_CLASSES, **OCR_TINY))
    torch.save(dict(arch='ocrnet.HRNet_Mscale', state_dict=nvidia), src)
    config = tmp_path / 'tiny.py'
    config.write_text(
        f'_base_ = [{OCR_CONFIG!r}]\nmodel = {tiny_ocr_cfg()!r}\n')
    load_tool('convert_nvidia').main([str(src), str(config), str(out)])
    printed = capsys.readouterr().out
    assert (f'ocrnet.HRNet_Mscale: {len(nvidia) - 2} tensors mapped, 2 conv '
            'biases folded' in printed), printed
    assert '0 zero-filled' in printed
    saved = torch.load(out, weights_only=True)
    model = build(tiny_ocr_cfg()).eval()
    missing, unexpected = model.load_state_dict(saved['state_dict'],
                                                strict=True)
    assert not missing and not unexpected
    assert model.test_cfg.scales == [0.5, 1.0, 2.0]
    x = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        logits = model(x, mode='tensor')
    assert logits.shape == (1, NUM_CLASSES, 64, 96)
    assert torch.isfinite(logits).all() and logits.std() > 0


def tiny_nvidia_ocr() -> NvidiaMscaleOCR:
    torch.manual_seed(0)
    net = randomise(NvidiaMscaleOCR(NUM_CLASSES, **OCR_TINY))
    for conv in (net.ocr.conv3x3_ocr[0], net.ocr.aux_head[0]):
        conv.bias.data.normal_()  # folding must matter
    return net.eval()


def test_hrnet_ocr_reference_has_the_shape_tables_names():
    """The re-implemented MscaleOCR and the name/shape table agree, tiny
    and at NVIDIA's width."""
    for kwargs in (OCR_TINY, {}):
        net = NvidiaMscaleOCR(19, **kwargs)
        assert {k: tuple(v.shape) for k, v in net.state_dict().items()} == \
            dict(nvidia_hrnet_ocr_shapes(19, **kwargs))


@pytest.mark.parametrize('scales', [(0.5, 1.0, 2.0), (1.0, )])
def test_hrnet_ocr_gives_nvidias_logits(scales):
    """Converted MscaleOCR weights in configs/nvidia's HRNet-OCR model (tiny
    widths) give the logits of their nscale_forward, HRNet trunk included.
    The input's sides are multiples of 64, so that every HRNet branch is
    exactly half the size of the one above it at scale 0.5 (see the
    README: MMSeg's HRNet fuses other sizes differently)."""
    net = tiny_nvidia_ocr()
    model = build(tiny_ocr_cfg()).eval()
    ckpt, report = convert_checkpoint(
        dict(arch='ocrnet.HRNet_Mscale',
             state_dict={f'module.{k}': v
                         for k, v in net.state_dict().items()}),
        model.state_dict())
    assert len(report.folded) == 2
    model.load_state_dict(ckpt['state_dict'], strict=True)
    model.test_cfg.scales = list(scales)
    x = torch.randn(2, 3, 128, 192, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        theirs = net.nscale_forward(x, scales)
        ours = model(x, mode='tensor')
    assert ours.shape == theirs.shape == (2, NUM_CLASSES, 128, 192)
    rel = float((ours - theirs).abs().max() / theirs.abs().max())
    assert rel <= 1e-4, rel
    assert theirs.abs().max() > 0.1  # not a vacuous comparison
