"""DeepLabV3 (ASPP) head with the HMSA attention branch."""
from typing import List, Tuple

from mmseg.models.decode_heads import ASPPHead
from mmseg.registry import MODELS
from mmseg.utils import OptConfigType
from torch import Tensor

from .attention_head_mixin import AttentionHeadMixin


@MODELS.register_module()
class HMSAASPPHead(AttentionHeadMixin, ASPPHead):
    """DeepLabV3 (``ASPPHead``) plus an attention branch.

    The attention reads the ASPP bottleneck's output, the classifier's own
    input. Parameters outside ``attention`` keep MMSeg's names.

    Args:
        attention_cfg (dict, optional): Arguments of
            :class:`AttentionBranch`. Defaults to
            ``dict(type='bottleneck', channels=64)``.
        **kwargs: Arguments of ``ASPPHead``.
    """

    def __init__(self,
                 attention_cfg: OptConfigType = dict(
                     type='bottleneck', channels=64),
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self._init_attention(self.channels, attention_cfg)

    def decode(self, inputs: List[Tensor]) -> Tuple[Tensor, Tensor]:
        """Return (ASPP bottleneck features, class logits)."""
        feats = self._forward_feature(inputs)
        return feats, self.cls_seg(feats)
