"""What every HMSA decode head adds to its MMSeg parent."""
from typing import List, Optional, Tuple

from mmseg.utils import OptConfigType
from torch import Tensor

from .attention_branch import AttentionBranch
from .fusion import ScaleOutput


class AttentionHeadMixin:
    """Adds an attention branch to an MMSeg decode head.

    A head using it implements :meth:`decode`, which returns the features
    the attention reads and the class logits; everything else of the parent
    head (parameter names, ``forward``, losses) stays MMSeg's, so MMSeg
    checkpoints load and ``forward`` gives the stock logits.
    """

    #: Name of the attention branch's submodule (its parameters' prefix).
    attention_name = 'attention'

    def _init_attention(self, in_channels: int,
                        attention_cfg: OptConfigType) -> None:
        cfg = dict(attention_cfg or {})
        cfg.setdefault('norm_cfg', self.norm_cfg)
        cfg.setdefault('act_cfg', self.act_cfg)
        cfg.setdefault('conv_cfg', self.conv_cfg)
        self.attention = AttentionBranch(in_channels=in_channels, **cfg)

    def decode(self, inputs: List[Tensor]) -> Tuple[Tensor, Tensor]:
        """Return (features read by the attention branch, class logits)."""
        raise NotImplementedError

    def forward(self, inputs: List[Tensor]) -> Tensor:
        """Class logits, exactly as the parent MMSeg head computes them."""
        return self.decode(inputs)[1]

    def attend(self, feats: Tensor) -> Tensor:
        """Attention map in (0, 1) from the features :meth:`decode` gave."""
        return self.attention(feats)

    def forward_scale(self,
                      inputs: List[Tensor],
                      with_attention: Optional[bool] = True) -> ScaleOutput:
        """Logits and attention of one scale."""
        feats, logits = self.decode(inputs)
        attention = self.attend(feats) if with_attention else None
        return ScaleOutput(logits=logits, attention=attention)
