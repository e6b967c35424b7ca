"""DeepLabV3+ head with the HMSA attention branch."""
from mmseg.models.decode_heads import DepthwiseSeparableASPPHead
from mmseg.registry import MODELS
from mmseg.utils import OptConfigType

from .attention_branch import add_attention_branch


@MODELS.register_module()
class HMSASepASPPHead(DepthwiseSeparableASPPHead):
    """DeepLabV3+ (``DepthwiseSeparableASPPHead``) plus an attention branch.

    The attention reads the same features as the classifier's decoder
    (``sep_bottleneck``): the upsampled ASPP output concatenated with the
    low-level (c1) features. All parameters outside ``attention`` keep
    MMSeg's names, so a checkpoint of the stock DeepLabV3+ model loads and
    only ``attention.*`` is new.

    Args:
        c1_in_channels (int): Input channels of the c1 decoder (0: none).
        c1_channels (int): Intermediate channels of the c1 decoder.
        attention_cfg (dict, optional): Arguments of
            :class:`AttentionBranch` (``type``: ``'bottleneck'``,
            ``'separable'`` or ``'paper'``; ``channels``; ``num_convs``;
            ``inputs``). Norm, activation and conv configs default to the
            head's. Defaults to ``dict(type='bottleneck', channels=64)``.
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
        add_attention_branch(
            self, attention_cfg, self.channels + fine, reads='sep_bottleneck')
