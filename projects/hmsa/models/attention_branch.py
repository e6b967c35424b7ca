"""The attention branch: decoder features -> one relative attention map."""
from typing import Optional

import torch.nn as nn
from mmcv.cnn import ConvModule, DepthwiseSeparableConvModule
from mmengine.model import BaseModule
from mmseg.utils import ConfigType, OptConfigType
from torch import Tensor

ATTENTION_TYPES = ('separable', 'paper')


class AttentionBranch(BaseModule):
    """Predicts a scale's relative attention ``a_s`` in (0, 1).

    Two 3x3 conv-BN-ReLU blocks, a 1x1 convolution to one channel and a
    sigmoid. ``type`` picks the 3x3 blocks:

    - ``'separable'`` (default): depthwise-separable 3x3 convolutions, like
      the rest of the DeepLabV3+ head. With 64 channels it costs a few
      percent of a MobileNetV2 DeepLabV3+ forward pass.
    - ``'paper'``: full 3x3 convolutions as in the paper (256 channels);
      about 29% extra inference time on MobileNetV2 DeepLabV3+ on a CPU.

    The last convolution starts near zero, so every attention map starts at
    about 0.5 and the attention fusion starts close to plain averaging.

    Args:
        in_channels (int): Channels of the features the branch reads.
        channels (int, optional): Bottleneck channels. Defaults to 64 for
            ``'separable'`` and 256 for ``'paper'``.
        type (str): ``'separable'`` or ``'paper'``. Defaults to
            ``'separable'``.
        num_convs (int): Number of 3x3 blocks. Defaults to 2.
        conv_cfg (dict, optional): Config of the conv layers.
        norm_cfg (dict, optional): Config of the norm layers. Defaults to BN.
        act_cfg (dict): Config of the activation. Defaults to ReLU.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 in_channels: int,
                 channels: Optional[int] = None,
                 type: str = 'separable',
                 num_convs: int = 2,
                 conv_cfg: OptConfigType = None,
                 norm_cfg: OptConfigType = dict(type='BN'),
                 act_cfg: ConfigType = dict(type='ReLU'),
                 init_cfg: OptConfigType = dict(
                     type='Normal', std=0.01,
                     override=dict(name='conv_attn'))):
        super().__init__(init_cfg)
        if type not in ATTENTION_TYPES:
            raise ValueError(f'unknown attention branch type {type!r}; '
                             f'expected one of {", ".join(ATTENTION_TYPES)}')
        if num_convs < 1:
            raise ValueError(f'num_convs must be >= 1, got {num_convs}')
        if channels is None:
            channels = 64 if type == 'separable' else 256
        self.type = type
        self.channels = channels
        blocks = []
        for i in range(num_convs):
            cin = in_channels if i == 0 else channels
            if type == 'separable':
                blocks.append(
                    DepthwiseSeparableConvModule(
                        cin,
                        channels,
                        3,
                        padding=1,
                        norm_cfg=norm_cfg,
                        act_cfg=act_cfg))
            else:
                blocks.append(
                    ConvModule(
                        cin,
                        channels,
                        3,
                        padding=1,
                        conv_cfg=conv_cfg,
                        norm_cfg=norm_cfg,
                        act_cfg=act_cfg))
        self.convs = nn.Sequential(*blocks)
        self.conv_attn = nn.Conv2d(channels, 1, kernel_size=1)

    def forward(self, feats: Tensor) -> Tensor:
        """Attention map of shape (N, 1, H, W) in (0, 1)."""
        return self.conv_attn(self.convs(feats)).sigmoid()
