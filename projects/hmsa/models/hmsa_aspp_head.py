"""DeepLabV3 (ASPP) head with the HMSA attention branch."""
from mmseg.models.decode_heads import ASPPHead
from mmseg.registry import MODELS
from mmseg.utils import OptConfigType

from .attention_branch import add_attention_branch


@MODELS.register_module()
class HMSAASPPHead(ASPPHead):
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
        add_attention_branch(self, attention_cfg)
