"""DeepLabV3+ head with the HMSA attention branch."""
from typing import List, Tuple

import torch
from mmseg.models.decode_heads import DepthwiseSeparableASPPHead
from mmseg.models.utils import resize
from mmseg.registry import MODELS
from mmseg.utils import OptConfigType
from torch import Tensor

from .attention_head_mixin import AttentionHeadMixin


@MODELS.register_module()
class HMSASepASPPHead(AttentionHeadMixin, DepthwiseSeparableASPPHead):
    """DeepLabV3+ (``DepthwiseSeparableASPPHead``) plus an attention branch.

    The attention reads the same features as the classifier's decoder: the
    upsampled ASPP output concatenated with the low-level (c1) features.
    All parameters outside ``attention`` keep MMSeg's names, so a checkpoint
    of the stock DeepLabV3+ model loads and only ``attention.*`` is new.

    Args:
        c1_in_channels (int): Input channels of the c1 decoder (0: none).
        c1_channels (int): Intermediate channels of the c1 decoder.
        attention_cfg (dict, optional): Arguments of
            :class:`AttentionBranch` (``type``: ``'bottleneck'``,
            ``'separable'`` or ``'paper'``; ``channels``; ``num_convs``).
            Norm, activation and conv configs default to the head's.
            Defaults to ``dict(type='bottleneck', channels=64)``.
        **kwargs: Arguments of ``DepthwiseSeparableASPPHead``.
    """

    def __init__(self,
                 c1_in_channels: int,
                 c1_channels: int,
                 attention_cfg: OptConfigType = dict(
                     type='bottleneck', channels=64),
                 **kwargs) -> None:
        super().__init__(
            c1_in_channels=c1_in_channels, c1_channels=c1_channels, **kwargs)
        fine = c1_channels if self.c1_bottleneck is not None else 0
        self._init_attention(self.channels + fine, attention_cfg)

    def decode(self, inputs: List[Tensor]) -> Tuple[Tensor, Tensor]:
        """Return (concatenated ASPP + c1 features, class logits)."""
        x = self._transform_inputs(inputs)
        pooled = resize(
            self.image_pool(x),
            size=x.shape[2:],
            mode='bilinear',
            align_corners=self.align_corners)
        aspp = torch.cat([pooled, *self.aspp_modules(x)], dim=1)
        feats = self.bottleneck(aspp)
        if self.c1_bottleneck is not None:
            fine = self.c1_bottleneck(inputs[0])
            feats = resize(
                feats,
                size=fine.shape[2:],
                mode='bilinear',
                align_corners=self.align_corners)
            feats = torch.cat([feats, fine], dim=1)
        logits = self.cls_seg(self.sep_bottleneck(feats))
        return feats, logits
