"""NVIDIA/semantic-segmentation's models, written from their code's structure
for the converter's tests (their weights cannot be downloaded here).

- :class:`NvidiaMscaleV3Plus`: their ``MscaleV3Plus`` on the ResNet-50 trunk
  (network/mscale.py, network/utils.py ``get_resnet``/``get_aspp``/
  ``make_attn_head``, network/Resnet.py), module for module so that its
  ``state_dict()`` has their names and shapes, with their forward
  (``_fwd``, ``nscale_forward``). Widths are arguments so a tiny one runs
  on a CPU; at the defaults the shapes are theirs.
- :func:`nvidia_hrnet_ocr_shapes`: the names and shapes of their
  ``MscaleOCR`` (network/ocrnet.py, network/hrnetv2.py,
  network/ocr_utils.py), from the loops that build it.

Their global ``cfg`` becomes arguments: BatchNorm2d for ``Norm2d``,
``align_corners=False``, ``SEGATTN_BOT_CH`` as ``bot_ch``,
``MSCALE_INNER_3x3=True``, no dropout in the attention head.
"""
from collections import OrderedDict
from typing import Dict, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F


def upsample(x, size):
    """Their ``Upsample``/``scale_as``."""
    return F.interpolate(x, size=tuple(size), mode='bilinear',
                         align_corners=False)


def resize_x(x, scale):
    """Their ``ResizeX``."""
    return F.interpolate(x, scale_factor=scale, mode='bilinear',
                         align_corners=False, recompute_scale_factor=True)



def nscale_forward(fwd, x_1x, scales):
    """NVIDIA's n-scale fusion, as their ``nscale_forward`` computes it:
    from the highest scale down, on each scale's image grid (``fwd``
    returns logits and attention at its input's size)."""
    pred = None
    for s in sorted(scales, reverse=True):
        cls, attn = fwd(resize_x(x_1x, s))
        if pred is None:
            pred = cls
        elif s >= 1.0:
            pred = upsample(pred, cls.shape[2:])
            pred = attn * cls + (1 - attn) * pred
        else:
            cls = upsample(attn * cls, pred.shape[2:])
            attn = upsample(attn, pred.shape[2:])
            pred = cls + (1 - attn) * pred
    return pred

class Bottleneck(nn.Module):
    """network/Resnet.py ``Bottleneck``."""
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1,
                               bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        residual = x if self.downsample is None else self.downsample(x)
        return self.relu(out + residual)


class ResNetTrunk(nn.Module):
    """``get_resnet('resnet-50', output_stride=8)``: only layer0..layer4
    are registered (layer0 = conv1, bn1, relu, maxpool); layer3's and
    layer4's 3x3 convolutions get dilation 2 and 4 and stride 1."""

    def __init__(self, base=64, layers=(3, 4, 6, 3)):
        super().__init__()
        self.inplanes = base
        self.layer0 = nn.Sequential(
            nn.Conv2d(3, base, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(base), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
        self.layer1 = self._make_layer(base, layers[0])
        self.layer2 = self._make_layer(base * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(base * 4, layers[2], stride=2)
        self.layer4 = self._make_layer(base * 8, layers[3], stride=2)
        for layer, d in ((self.layer3, 2), (self.layer4, 4)):
            for n, m in layer.named_modules():
                if 'conv2' in n:
                    m.dilation, m.padding, m.stride = (d, d), (d, d), (1, 1)
                elif 'downsample.0' in n:
                    m.stride = (1, 1)

    def _make_layer(self, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * 4:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * 4, 1, stride=stride,
                          bias=False), nn.BatchNorm2d(planes * 4))
        layers = [Bottleneck(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * 4
        layers += [Bottleneck(self.inplanes, planes)
                   for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.layer1(self.layer0(x))
        s2 = x
        x = self.layer2(x)
        s4 = x
        return s2, s4, self.layer4(self.layer3(x))


def conv_bn_relu(cin, cout, k=1, dilation=1):
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, dilation=dilation,
                  padding=0 if k == 1 else dilation, bias=False),
        nn.BatchNorm2d(cout), nn.ReLU())


class ASPP(nn.Module):
    """``AtrousSpatialPyramidPoolingModule`` at output stride 8 (rates 6,
    12, 18 doubled)."""

    def __init__(self, in_dim, reduction_dim=256, rates=(6, 12, 18)):
        super().__init__()
        self.features = nn.ModuleList(
            [conv_bn_relu(in_dim, reduction_dim)] +
            [conv_bn_relu(in_dim, reduction_dim, 3, 2 * r) for r in rates])
        self.img_pooling = nn.AdaptiveAvgPool2d(1)
        self.img_conv = conv_bn_relu(in_dim, reduction_dim)

    def forward(self, x):
        out = upsample(self.img_conv(self.img_pooling(x)), x.shape[2:])
        return torch.cat([out] + [f(x) for f in self.features], 1)


def make_attn_head(in_ch, bot_ch, out_ch=1):
    return nn.Sequential(OrderedDict([
        ('conv0', nn.Conv2d(in_ch, bot_ch, 3, padding=1, bias=False)),
        ('bn0', nn.BatchNorm2d(bot_ch)), ('re0', nn.ReLU()),
        ('conv1', nn.Conv2d(bot_ch, bot_ch, 3, padding=1, bias=False)),
        ('bn1', nn.BatchNorm2d(bot_ch)), ('re1', nn.ReLU()),
        ('conv2', nn.Conv2d(bot_ch, out_ch, 1, bias=False)),
        ('sig', nn.Sigmoid()),
    ]))


class NvidiaMscaleV3Plus(nn.Module):
    """``MscaleV3Plus(trunk='resnet-50')`` (``DeepV3R50`` of mscale.py)."""

    def __init__(self, num_classes, base=64, aspp_ch=256, fine_ch=48,
                 bot_ch=256):
        super().__init__()
        self.backbone = ResNetTrunk(base)
        s2_ch, high_ch = base * 4, base * 32
        self.aspp = ASPP(high_ch, aspp_ch)
        self.bot_fine = nn.Conv2d(s2_ch, fine_ch, 1, bias=False)
        self.bot_aspp = nn.Conv2d(5 * aspp_ch, aspp_ch, 1, bias=False)
        self.final = nn.Sequential(
            nn.Conv2d(aspp_ch + fine_ch, bot_ch, 3, padding=1, bias=False),
            nn.BatchNorm2d(bot_ch), nn.ReLU(),
            nn.Conv2d(bot_ch, bot_ch, 3, padding=1, bias=False),
            nn.BatchNorm2d(bot_ch), nn.ReLU(),
            nn.Conv2d(bot_ch, num_classes, 1, bias=False))
        self.scale_attn = make_attn_head(aspp_ch + fine_ch, bot_ch)

    def _fwd(self, x):
        s2, _, final_features = self.backbone(x)
        conv_aspp = self.bot_aspp(self.aspp(final_features))
        conv_s2 = self.bot_fine(s2)
        cat_s4 = torch.cat([conv_s2, upsample(conv_aspp, s2.shape[2:])], 1)
        out = upsample(self.final(cat_s4), x.shape[2:])
        attn = upsample(self.scale_attn(cat_s4), x.shape[2:])
        return out, attn

    def nscale_forward(self, x_1x, scales):
        return nscale_forward(self._fwd, x_1x, scales)


def randomise(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random BatchNorm affine parameters and statistics, so that every
    tensor's place matters."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.weight.data = 0.5 + torch.rand(c, generator=g)
            m.bias.data = 0.1 * torch.randn(c, generator=g)
            m.running_mean = 0.1 * torch.randn(c, generator=g)
            m.running_var = 0.5 + torch.rand(c, generator=g)
            m.num_batches_tracked.fill_(7)
    return model


# --------------------------------------------------------------- MscaleOCR
Shapes = Dict[str, Tuple[int, ...]]


def _conv(s: Shapes, name, cout, cin, k, bias=False):
    s[f'{name}.weight'] = (cout, cin, k, k)
    if bias:
        s[f'{name}.bias'] = (cout, )


def _bn(s: Shapes, name, c):
    for p in ('weight', 'bias', 'running_mean', 'running_var'):
        s[f'{name}.{p}'] = (c, )
    s[f'{name}.num_batches_tracked'] = ()


def nvidia_hrnet_ocr_shapes(num_classes: int,
                            stage1_channels: int = 64,
                            widths: Sequence[int] = (48, 96, 192, 384),
                            num_blocks: int = 4,
                            num_modules: Sequence[int] = (1, 4, 3),
                            mid_ch: int = 512,
                            key_ch: int = 256,
                            bot_ch: int = 256) -> Shapes:
    """``MscaleOCR``'s ``state_dict`` names and shapes (without
    ``module.``). The defaults are NVIDIA's HRNetV2-W48 OCR
    (``cfg.MODEL.OCR_EXTRA``, ``OCR.MID_CHANNELS``, ``OCR.KEY_CHANNELS``,
    ``SEGATTN_BOT_CH``)."""
    s: Shapes = OrderedDict()
    b = 'backbone'
    _conv(s, f'{b}.conv1', 64, 3, 3)
    _bn(s, f'{b}.bn1', 64)
    _conv(s, f'{b}.conv2', 64, 64, 3)
    _bn(s, f'{b}.bn2', 64)
    planes = stage1_channels  # layer1: Bottleneck blocks from 64 channels
    for i in range(num_blocks):
        cin = 64 if i == 0 else planes * 4
        n = f'{b}.layer1.{i}'
        _conv(s, f'{n}.conv1', planes, cin, 1)
        _bn(s, f'{n}.bn1', planes)
        _conv(s, f'{n}.conv2', planes, planes, 3)
        _bn(s, f'{n}.bn2', planes)
        _conv(s, f'{n}.conv3', planes * 4, planes, 1)
        _bn(s, f'{n}.bn3', planes * 4)
        if i == 0 and cin != planes * 4:
            _conv(s, f'{n}.downsample.0', planes * 4, cin, 1)
            _bn(s, f'{n}.downsample.1', planes * 4)
    pre = [planes * 4]
    for stage, modules in zip((2, 3, 4), num_modules):
        cur = list(widths[:stage])  # BasicBlock: expansion 1
        t = f'{b}.transition{stage - 1}'
        for i in range(len(cur)):
            if i < len(pre):
                if cur[i] != pre[i]:
                    _conv(s, f'{t}.{i}.0', cur[i], pre[i], 3)
                    _bn(s, f'{t}.{i}.1', cur[i])
            else:
                for j in range(i + 1 - len(pre)):
                    cin = pre[-1]
                    cout = cur[i] if j == i - len(pre) else cin
                    _conv(s, f'{t}.{i}.{j}.0', cout, cin, 3)
                    _bn(s, f'{t}.{i}.{j}.1', cout)
        for m in range(modules):
            n = f'{b}.stage{stage}.{m}'
            for br, c in enumerate(cur):
                for k in range(num_blocks):
                    blk = f'{n}.branches.{br}.{k}'
                    _conv(s, f'{blk}.conv1', c, c, 3)
                    _bn(s, f'{blk}.bn1', c)
                    _conv(s, f'{blk}.conv2', c, c, 3)
                    _bn(s, f'{blk}.bn2', c)
            for i in range(len(cur)):
                for j in range(len(cur)):
                    f = f'{n}.fuse_layers.{i}.{j}'
                    if j > i:
                        _conv(s, f'{f}.0', cur[i], cur[j], 1)
                        _bn(s, f'{f}.1', cur[i])
                    elif j < i:
                        for k in range(i - j):
                            cout = cur[i] if k == i - j - 1 else cur[j]
                            _conv(s, f'{f}.{k}.0', cout, cur[j], 3)
                            _bn(s, f'{f}.{k}.1', cout)
        pre = cur
    high = sum(widths)
    o = 'ocr'
    _conv(s, f'{o}.conv3x3_ocr.0', mid_ch, high, 3, bias=True)
    _bn(s, f'{o}.conv3x3_ocr.1.0', mid_ch)
    blk = f'{o}.ocr_distri_head.object_context_block'
    for proj in ('f_pixel', 'f_object'):
        _conv(s, f'{blk}.{proj}.0', key_ch, mid_ch, 1)
        _bn(s, f'{blk}.{proj}.1.0', key_ch)
        _conv(s, f'{blk}.{proj}.2', key_ch, key_ch, 1)
        _bn(s, f'{blk}.{proj}.3.0', key_ch)
    _conv(s, f'{blk}.f_down.0', key_ch, mid_ch, 1)
    _bn(s, f'{blk}.f_down.1.0', key_ch)
    _conv(s, f'{blk}.f_up.0', mid_ch, key_ch, 1)
    _bn(s, f'{blk}.f_up.1.0', mid_ch)
    _conv(s, f'{o}.ocr_distri_head.conv_bn_dropout.0', mid_ch, 2 * mid_ch, 1)
    _bn(s, f'{o}.ocr_distri_head.conv_bn_dropout.1.0', mid_ch)
    _conv(s, f'{o}.cls_head', num_classes, mid_ch, 1, bias=True)
    _conv(s, f'{o}.aux_head.0', high, high, 1, bias=True)
    _bn(s, f'{o}.aux_head.1.0', high)
    _conv(s, f'{o}.aux_head.2', num_classes, high, 1, bias=True)
    _conv(s, 'scale_attn.conv0', bot_ch, mid_ch, 3)
    _bn(s, 'scale_attn.bn0', bot_ch)
    _conv(s, 'scale_attn.conv1', bot_ch, bot_ch, 3)
    _bn(s, 'scale_attn.bn1', bot_ch)
    _conv(s, 'scale_attn.conv2', 1, bot_ch, 1)
    return s


def fake_state_dict(shapes: Shapes, seed: int = 0) -> Dict[str, torch.Tensor]:
    """Random tensors of the given shapes, with ``module.`` in front as
    NVIDIA's (Distributed)DataParallel checkpoints have it. Scaled as a
    trained network's are (convolutions by their fan-in, BatchNorm scales
    and variances positive), so that a deep model running them stays
    finite."""
    g = torch.Generator().manual_seed(seed)
    out = OrderedDict()
    for name, shape in shapes.items():
        if name.endswith('num_batches_tracked'):
            value = torch.tensor(7)
        elif name.endswith('running_var') or (name.endswith('.weight')
                                               and len(shape) == 1):
            value = 0.5 + torch.rand(shape, generator=g)
        elif len(shape) == 4:
            fan_in = shape[1] * shape[2] * shape[3]
            value = torch.randn(shape, generator=g) * fan_in**-0.5
        else:
            value = 0.1 * torch.randn(shape, generator=g)
        out[f'module.{name}'] = value
    return out


def bn_relu(c):
    """Their ``BNReLU``."""
    return nn.Sequential(nn.BatchNorm2d(c), nn.ReLU())


class ObjectAttentionBlock(nn.Module):
    """network/ocr_utils.py ``ObjectAttentionBlock`` (scale 1)."""

    def __init__(self, in_ch, key_ch):
        super().__init__()
        self.key_ch = key_ch

        def two(cin):
            return nn.Sequential(
                nn.Conv2d(cin, key_ch, 1, bias=False), bn_relu(key_ch),
                nn.Conv2d(key_ch, key_ch, 1, bias=False), bn_relu(key_ch))

        self.f_pixel, self.f_object = two(in_ch), two(in_ch)
        self.f_down = nn.Sequential(
            nn.Conv2d(in_ch, key_ch, 1, bias=False), bn_relu(key_ch))
        self.f_up = nn.Sequential(
            nn.Conv2d(key_ch, in_ch, 1, bias=False), bn_relu(in_ch))

    def forward(self, x, proxy):
        n, _, h, w = x.shape
        query = self.f_pixel(x).view(n, self.key_ch, -1).permute(0, 2, 1)
        key = self.f_object(proxy).view(n, self.key_ch, -1)
        value = self.f_down(proxy).view(n, self.key_ch, -1).permute(0, 2, 1)
        sim = F.softmax(self.key_ch**-.5 * torch.matmul(query, key), dim=-1)
        context = torch.matmul(sim, value).permute(0, 2, 1).contiguous()
        return self.f_up(context.view(n, self.key_ch, h, w))


class SpatialOCR(nn.Module):
    """``SpatialOCR_Module`` without its ASPP (``OCR_ASPP=False``)."""

    def __init__(self, in_ch, key_ch):
        super().__init__()
        self.object_context_block = ObjectAttentionBlock(in_ch, key_ch)
        self.conv_bn_dropout = nn.Sequential(
            nn.Conv2d(2 * in_ch, in_ch, 1, bias=False), bn_relu(in_ch),
            nn.Dropout2d(0.05))

    def forward(self, feats, proxy):
        context = self.object_context_block(feats, proxy)
        return self.conv_bn_dropout(torch.cat([context, feats], 1))


class OCRBlock(nn.Module):
    """network/ocrnet.py ``OCR_block``: (class logits, aux logits, OCR
    features)."""

    def __init__(self, high_ch, num_classes, mid_ch=512, key_ch=256):
        super().__init__()
        self.conv3x3_ocr = nn.Sequential(
            nn.Conv2d(high_ch, mid_ch, 3, padding=1), bn_relu(mid_ch))
        self.ocr_distri_head = SpatialOCR(mid_ch, key_ch)
        self.cls_head = nn.Conv2d(mid_ch, num_classes, 1)
        self.aux_head = nn.Sequential(
            nn.Conv2d(high_ch, high_ch, 1), bn_relu(high_ch),
            nn.Conv2d(high_ch, num_classes, 1))

    def forward(self, high):
        feats = self.conv3x3_ocr(high)
        aux = self.aux_head(high)
        # SpatialGather_Module: class-weighted sums of the features
        n, c = aux.shape[:2]
        probs = F.softmax(aux.view(n, c, -1), dim=2)
        context = torch.matmul(probs, feats.view(n, feats.shape[1],
                                                 -1).permute(0, 2, 1))
        context = context.permute(0, 2, 1).unsqueeze(3)
        ocr_feats = self.ocr_distri_head(feats, context)
        return self.cls_head(ocr_feats), aux, ocr_feats


class NvidiaOCRBlock(OCRBlock):
    """``OCR_block`` and, beside it, ``MscaleOCR``'s ``scale_attn`` on the
    OCR features: (class logits, aux logits, attention)."""

    def __init__(self, high_ch, num_classes, mid_ch=512, key_ch=256,
                 bot_ch=256):
        super().__init__(high_ch, num_classes, mid_ch, key_ch)
        self.scale_attn = make_attn_head(mid_ch, bot_ch)

    def forward(self, high):
        cls, aux, ocr_feats = super().forward(high)
        return cls, aux, self.scale_attn(ocr_feats)


class BasicBlock(nn.Module):
    """network/hrnetv2.py ``BasicBlock``."""
    expansion = 1

    def __init__(self, inplanes, planes):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + x)


def conv_bn(cin, cout, k, stride, relu):
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, bias=False),
              nn.BatchNorm2d(cout)]
    return nn.Sequential(*(layers + [nn.ReLU()] if relu else layers))


class HighResolutionModule(nn.Module):
    """network/hrnetv2.py ``HighResolutionModule`` (BasicBlock branches of
    unchanged width, every branch output): coarser branches are 1x1-conv'd
    and resized bilinearly to the finer one's size in one step, finer ones
    reach a coarser one by strided 3x3 convolutions."""

    def __init__(self, widths, num_blocks):
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Sequential(*[BasicBlock(c, c) for _ in range(num_blocks)])
            for c in widths)
        n = len(widths)
        self.fuse_layers = nn.ModuleList()
        for i in range(n):
            row = []
            for j in range(n):
                if j > i:
                    row.append(conv_bn(widths[j], widths[i], 1, 1, False))
                elif j == i:
                    row.append(None)
                else:
                    row.append(nn.Sequential(*[
                        conv_bn(widths[j], widths[i], 3, 2, False)
                        if k == i - j - 1 else
                        conv_bn(widths[j], widths[j], 3, 2, True)
                        for k in range(i - j)
                    ]))
            self.fuse_layers.append(nn.ModuleList(row))
        self.relu = nn.ReLU()

    def forward(self, x):
        x = [branch(xi) for branch, xi in zip(self.branches, x)]
        out = []
        for i, row in enumerate(self.fuse_layers):
            y = x[0] if i == 0 else row[0](x[0])
            for j in range(1, len(x)):
                if j == i:
                    y = y + x[j]
                elif j > i:
                    y = y + upsample(row[j](x[j]), x[i].shape[2:])
                else:
                    y = y + row[j](x[j])
            out.append(self.relu(y))
        return out


class HRNetTrunk(nn.Module):
    """network/hrnetv2.py ``HighResolutionNet`` (arguments as in
    :func:`nvidia_hrnet_ocr_shapes`): stem, layer1 of Bottlenecks,
    transitions and stages 2-4, every branch bilinearly resized to the
    finest and concatenated."""

    def __init__(self, stage1_channels=64, widths=(48, 96, 192, 384),
                 num_blocks=4, num_modules=(1, 4, 3)):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.conv2 = nn.Conv2d(64, 64, 3, 2, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        planes = stage1_channels
        downsample = None if planes * 4 == 64 else nn.Sequential(
            nn.Conv2d(64, planes * 4, 1, bias=False),
            nn.BatchNorm2d(planes * 4))
        self.layer1 = nn.Sequential(
            Bottleneck(64, planes, 1, downsample),
            *[Bottleneck(planes * 4, planes) for _ in range(1, num_blocks)])
        pre = [planes * 4]
        for stage, modules in zip((2, 3, 4), num_modules):
            cur = list(widths[:stage])
            transition = nn.ModuleList()
            for i, c in enumerate(cur):
                if i < len(pre):
                    transition.append(
                        conv_bn(pre[i], c, 3, 1, True) if c != pre[i]
                        else None)
                else:
                    transition.append(nn.Sequential(*[
                        conv_bn(pre[-1], c if j == i - len(pre) else pre[-1],
                                3, 2, True)
                        for j in range(i + 1 - len(pre))
                    ]))
            setattr(self, f'transition{stage - 1}', transition)
            setattr(self, f'stage{stage}', nn.Sequential(*[
                HighResolutionModule(cur, num_blocks) for _ in range(modules)
            ]))
            pre = cur

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer1(self.relu(self.bn2(self.conv2(x))))
        ys = [x]
        for stage in (2, 3, 4):
            transition = getattr(self, f'transition{stage - 1}')
            xs = [
                (t(ys[min(i, len(ys) - 1)]) if t is not None else ys[i])
                for i, t in enumerate(transition)
            ]
            ys = getattr(self, f'stage{stage}')(xs)
        size = ys[0].shape[2:]
        return torch.cat([ys[0]] + [upsample(y, size) for y in ys[1:]], 1)


class NvidiaMscaleOCR(nn.Module):
    """network/ocrnet.py ``MscaleOCR`` on the HRNet trunk
    (``HRNet_Mscale``), with their ``_fwd`` and ``nscale_forward`` (final
    logits only; their aux logits are fused the same way)."""

    def __init__(self, num_classes, stage1_channels=64,
                 widths=(48, 96, 192, 384), num_blocks=4,
                 num_modules=(1, 4, 3), mid_ch=512, key_ch=256, bot_ch=256):
        super().__init__()
        self.backbone = HRNetTrunk(stage1_channels, widths, num_blocks,
                                   num_modules)
        self.ocr = OCRBlock(sum(widths), num_classes, mid_ch, key_ch)
        self.scale_attn = make_attn_head(mid_ch, bot_ch)

    def _fwd(self, x):
        cls, _, ocr_feats = self.ocr(self.backbone(x))
        attn = self.scale_attn(ocr_feats)
        return upsample(cls, x.shape[2:]), upsample(attn, x.shape[2:])

    def nscale_forward(self, x_1x, scales):
        return nscale_forward(self._fwd, x_1x, scales)
