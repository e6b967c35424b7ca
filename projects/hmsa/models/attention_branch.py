"""The attention branch: decoder features -> one relative attention map."""
from typing import Optional

import torch.nn as nn
from mmcv.cnn import ConvModule, DepthwiseSeparableConvModule
from mmengine.model import BaseModule
from mmseg.utils import ConfigType, OptConfigType
from torch import Tensor

ATTENTION_TYPES = ('bottleneck', 'separable', 'paper')


class AttentionBranch(BaseModule):
    """Predicts a scale's relative attention ``a_s`` in (0, 1).

    Conv-BN-ReLU blocks, a 1x1 convolution to one channel and a sigmoid.
    ``type`` picks the blocks:

    - ``'bottleneck'`` (default): a 1x1 conv that reduces the decoder's
      features to ``channels`` (64), then ``num_convs`` (1) 3x3 convs on
      those. The cheapest of the three.
    - ``'separable'``: ``num_convs`` (2) depthwise-separable 3x3 convs, like
      the rest of the DeepLabV3+ head, at ``channels`` (64). Fewest
      parameters, but a depthwise 3x3 over all the decoder's channels is
      memory-bound on a CPU.
    - ``'paper'``: ``num_convs`` (2) full 3x3 convs at ``channels`` (256)
      and a last 1x1 convolution without bias, as in the paper and in
      NVIDIA's ``make_attn_head``.

    Timed alone on MobileNetV2 DeepLabV3+'s decoder features of a 512x1024
    image on a 2-core CPU: bottleneck 0.33 s, separable 0.84 s, paper
    2.62 s, against roughly 8.5 s for the whole stock network.

    The last convolution starts near zero, so every attention map starts at
    about 0.5 and the attention fusion starts close to plain averaging.

    Args:
        in_channels (int): Channels of the features the branch reads.
        channels (int, optional): Channels of the blocks. Defaults to 64
            for ``'bottleneck'`` and ``'separable'``, 256 for ``'paper'``.
        type (str): ``'bottleneck'``, ``'separable'`` or ``'paper'``.
            Defaults to ``'bottleneck'``.
        num_convs (int, optional): Number of 3x3 blocks. Defaults to 1 for
            ``'bottleneck'`` and 2 otherwise.
        bias (bool, optional): Whether the last 1x1 convolution has a bias.
            Defaults to False for ``'paper'`` and True otherwise.
        conv_cfg (dict, optional): Config of the conv layers.
        norm_cfg (dict, optional): Config of the norm layers. Defaults to BN.
        act_cfg (dict): Config of the activation. Defaults to ReLU.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 in_channels: int,
                 channels: Optional[int] = None,
                 type: str = 'bottleneck',
                 num_convs: Optional[int] = None,
                 bias: Optional[bool] = None,
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
        if num_convs is None:
            num_convs = 1 if type == 'bottleneck' else 2
        if num_convs < 1:
            raise ValueError(f'num_convs must be >= 1, got {num_convs}')
        if channels is None:
            channels = 256 if type == 'paper' else 64
        self.type = type
        self.channels = channels
        common = dict(norm_cfg=norm_cfg, act_cfg=act_cfg)
        blocks = []
        cin = in_channels
        if type == 'bottleneck':
            blocks.append(
                ConvModule(cin, channels, 1, conv_cfg=conv_cfg, **common))
            cin = channels
        for _ in range(num_convs):
            if type == 'separable':
                blocks.append(
                    DepthwiseSeparableConvModule(
                        cin, channels, 3, padding=1, **common))
            else:
                blocks.append(
                    ConvModule(
                        cin,
                        channels,
                        3,
                        padding=1,
                        conv_cfg=conv_cfg,
                        **common))
            cin = channels
        self.convs = nn.Sequential(*blocks)
        if bias is None:
            bias = type != 'paper'
        self.conv_attn = nn.Conv2d(channels, 1, kernel_size=1, bias=bias)

    def forward(self, feats: Tensor) -> Tensor:
        """Attention map of shape (N, 1, H, W) in (0, 1)."""
        return self.conv_attn(self.convs(feats)).sigmoid()
