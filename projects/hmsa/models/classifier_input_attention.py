"""An attention branch for any MMSeg decode head, reading what its
classifier reads."""
import contextlib
from typing import Callable, Iterator, List, Tuple

import torch.nn as nn
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.utils import OptConfigType
from torch import Tensor

from .attention_head_mixin import AttentionHeadMixin


@contextlib.contextmanager
def classifier_inputs(head: BaseDecodeHead) -> Iterator[List[Tensor]]:
    """Collect what ``head.cls_seg`` is called with while the block runs.

    Every MMSeg decode head ends its ``forward`` in ``self.cls_seg(feat)``
    (dropout, then the 1x1 classifier ``conv_seg``); ``feat`` is the
    head's last feature map, before dropout. The call itself is unchanged.
    """
    seen = []
    classify = head.cls_seg

    def recording(feat: Tensor) -> Tensor:
        seen.append(feat)
        return classify(feat)

    head.cls_seg = recording
    try:
        yield seen
    finally:
        del head.cls_seg


def _head_attribute(name: str) -> property:
    """A read-only property that reads ``self.head.<name>``."""
    return property(
        lambda self: getattr(self.head, name), doc=f"The head's {name}.")


class ClassifierInputAttention(AttentionHeadMixin):
    """The attention branch of an MMSeg decode head that has none.

    The branch reads the input of the head's classifier (``cls_seg``): the
    features its class logits come from, whatever head it is (FCN, PSPNet,
    UPerNet, SegFormer, DeepLabV3, OCR, ...). It is added to the head as
    its ``attention`` submodule, so its parameters are named
    ``<head>.attention.*`` and every other name stays MMSeg's: a stock
    checkpoint loads with only the branch missing, and the head's logits
    are the stock ones.

    This object holds no parameters; it gives the segmentor the interface
    of :class:`AttentionHeadMixin` (``decode``, ``forward_scale``, ...) for
    the head it wraps. Heads that declare other features
    (:class:`HMSASepASPPHead`) implement that interface themselves.

    Args:
        head (BaseDecodeHead): The decode head; its ``forward`` must call
            ``cls_seg`` once.
        attention_cfg (dict, optional): Arguments of :class:`AttentionBranch`
            and ``inputs`` (see :class:`AttentionHeadMixin`). Norm,
            activation and conv configs default to the head's.
    """

    def __init__(self, head: BaseDecodeHead,
                 attention_cfg: OptConfigType = None) -> None:
        name = type(head).__name__
        if not isinstance(getattr(head, 'conv_seg', None), nn.Conv2d):
            raise ValueError(
                f'{name} has no conv_seg classifier for an attention branch '
                'to read the input of; use an HMSA head that declares its '
                'features')
        if hasattr(head, 'attention'):
            raise ValueError(f'{name} already has an attention submodule')
        self.head = head
        self._init_attention(head.conv_seg.in_channels, attention_cfg)

    # What AttentionHeadMixin reads of its head.
    @property
    def attention(self) -> nn.Module:
        """The branch, a submodule of the head."""
        return self.head.attention

    @attention.setter
    def attention(self, branch: nn.Module) -> None:
        self.head.add_module('attention', branch)

    out_channels = _head_attribute('out_channels')
    align_corners = _head_attribute('align_corners')
    norm_cfg = _head_attribute('norm_cfg')
    act_cfg = _head_attribute('act_cfg')
    conv_cfg = _head_attribute('conv_cfg')

    def classify(self, forward: Callable[..., Tensor],
                 *args) -> Tuple[Tensor, Tensor]:
        """Run ``forward(*args)`` (the head's forward, or one that ends in
        it) and return (the classifier's input, the logits)."""
        with classifier_inputs(self.head) as seen:
            logits = forward(*args)
        if len(seen) != 1:
            raise RuntimeError(
                f'{type(self.head).__name__} called cls_seg {len(seen)} '
                'times in one forward pass; the attention branch reads the '
                'input of a single call. Use an HMSA head that declares '
                'the features its attention reads.')
        return seen[0], logits

    def decode(self, inputs: List[Tensor]) -> Tuple[Tensor, Tensor]:
        """Return (the classifier's input features, class logits)."""
        return self.classify(self.head.forward, inputs)

    def forward(self, inputs: List[Tensor]) -> Tensor:
        """Class logits, exactly as the head computes them."""
        return self.head.forward(inputs)
