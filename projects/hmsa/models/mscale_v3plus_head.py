"""The DeepLabV3+ decoder of NVIDIA's multi-scale attention model."""
from typing import List

import torch
import torch.nn as nn
from mmcv.cnn import ConvModule
from mmseg.models.decode_heads import ASPPHead
from mmseg.models.utils import resize
from mmseg.registry import MODELS
from mmseg.utils import OptConfigType
from torch import Tensor

from .attention_branch import add_attention_branch


@MODELS.register_module()
class MscaleV3PlusHead(ASPPHead):
    """DeepLabV3+ as NVIDIA/semantic-segmentation builds it, with the
    attention branch (their ``MscaleV3Plus`` decoder, network/mscale.py).

    Unlike MMSeg's ``DepthwiseSeparableASPPHead`` the ASPP convolutions are
    full (not separable), the ASPP output (image pooling first, then the
    dilated branches, as MMSeg's ``ASPPHead`` orders them) and the
    low-level features are projected by plain 1x1 convolutions without
    normalisation or activation, and two 3x3 conv-BN-ReLU blocks precede
    the classifier (``fuse_convs``). The attention branch reads the
    concatenated projections (``channels + c1_channels``), the input of
    ``fuse_convs``.

    Args:
        c1_in_channels (int): Channels of the low-level (stride 4)
            features, read from ``inputs[0]``.
        c1_channels (int): Channels of their projection. NVIDIA: 48.
        attention_cfg (dict, optional): Arguments of
            :class:`AttentionBranch`. Defaults to NVIDIA's branch,
            ``dict(type='paper', channels=256, num_convs=2)``.
        **kwargs: Arguments of ``ASPPHead``: NVIDIA's model has
            ``channels=256`` and, at output stride 8,
            ``dilations=(1, 12, 24, 36)``.
    """

    def __init__(self,
                 c1_in_channels: int,
                 c1_channels: int = 48,
                 attention_cfg: OptConfigType = dict(
                     type='paper', channels=256, num_convs=2),
                 **kwargs) -> None:
        super().__init__(**kwargs)
        linear = dict(norm_cfg=None, act_cfg=None, bias=False,
                      conv_cfg=self.conv_cfg)
        # replaces ASPPHead's 3x3 conv-BN-ReLU bottleneck
        self.bottleneck = ConvModule(
            (len(self.dilations) + 1) * self.channels, self.channels, 1,
            **linear)
        self.c1_bottleneck = ConvModule(c1_in_channels, c1_channels, 1,
                                        **linear)
        fused = self.channels + c1_channels
        self.fuse_convs = nn.Sequential(*[
            ConvModule(
                cin,
                self.channels,
                3,
                padding=1,
                conv_cfg=self.conv_cfg,
                norm_cfg=self.norm_cfg,
                act_cfg=self.act_cfg) for cin in (fused, self.channels)
        ])
        add_attention_branch(self, attention_cfg, fused, reads='fuse_convs')

    def forward(self, inputs: List[Tensor]) -> Tensor:
        """Class logits."""
        aspp = self.bottleneck(
            torch.cat(self._aspp_outputs(self._transform_inputs(inputs)),
                      dim=1))
        fine = self.c1_bottleneck(inputs[0])
        aspp = resize(
            aspp,
            size=fine.shape[2:],
            mode='bilinear',
            align_corners=self.align_corners)
        return self.cls_seg(self.fuse_convs(torch.cat([fine, aspp], dim=1)))

    def _aspp_outputs(self, x: Tensor) -> List[Tensor]:
        pooled = resize(
            self.image_pool(x),
            size=x.shape[2:],
            mode='bilinear',
            align_corners=self.align_corners)
        return [pooled, *self.aspp_modules(x)]
