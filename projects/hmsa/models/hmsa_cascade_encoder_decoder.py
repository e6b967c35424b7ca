"""Hierarchical multi-scale attention for cascaded decode heads (OCRNet)."""
from dataclasses import dataclass
from typing import Dict, List, NamedTuple, Optional, Tuple

import torch.nn as nn
from mmseg.models.segmentors import CascadeEncoderDecoder
from mmseg.registry import MODELS
from mmseg.utils import ConfigType, OptConfigType, SampleList, add_prefix
from torch import Tensor

from .classifier_input_attention import ClassifierInputAttention
from .fusion import ScaleOutput, explicit_fuse, hierarchical_fuse, resize_to
from .hmsa_encoder_decoder import HMSAEncoderDecoder


@dataclass
class CascadeScaleOutput(ScaleOutput):
    """A scale's output of a cascade: the final logits and attention, and
    the logits of every earlier stage (OCRNet: the soft object regions).

    Attributes:
        stage_logits (tuple[Tensor]): Logits of stages ``0 .. n-2``.
    """

    stage_logits: Tuple[Tensor, ...] = ()


class CascadeFeatures(NamedTuple):
    """What a cascade's attention needs from one decoding pass."""

    #: The input of the final head's classifier (the branch reads it).
    attention_input: Tensor
    #: Logits of the earlier stages, fused with the same attention.
    stage_logits: Tuple[Tensor, ...]


def earlier_stage_logits(heads: nn.ModuleList,
                         inputs: List[Tensor]) -> Tuple[Tensor, ...]:
    """Run every stage but the last, as MMSeg's cascade does: stage 0 reads
    the backbone features, each later stage also the previous logits."""
    out = heads[0].forward(inputs)
    stages = [out]
    for head in heads[1:-1]:
        out = head.forward(inputs, out)
        stages.append(out)
    return tuple(stages)


class CascadeAttention(ClassifierInputAttention):
    """:class:`ClassifierInputAttention` on the final head of a cascade.

    A scale's decoding runs every stage; the branch reads the input of the
    final head's classifier (OCRNet: the object-contextual features, the
    OCR block's output, as in NVIDIA's ``MscaleOCR``), and the earlier
    stages' logits travel with the scale's output
    (:class:`CascadeScaleOutput`) so training can fuse them with the same
    attention.

    Args:
        heads (nn.ModuleList): The cascade's decode heads.
        attention_cfg (dict, optional): See
            :class:`ClassifierInputAttention`.
    """

    def __init__(self, heads: nn.ModuleList,
                 attention_cfg: OptConfigType = None) -> None:
        super().__init__(heads[-1], attention_cfg)
        self.heads = heads

    def decode(self, inputs: List[Tensor]) -> Tuple[CascadeFeatures, Tensor]:
        """Return (:class:`CascadeFeatures`, the final class logits)."""
        stages = earlier_stage_logits(self.heads, inputs)
        feats, logits = self.classify(self.head.forward, inputs, stages[-1])
        return CascadeFeatures(feats, stages), logits

    def scale_output(self,
                     feats: CascadeFeatures,
                     logits: Tensor,
                     with_attention: Optional[bool] = True
                     ) -> CascadeScaleOutput:
        """A scale's :class:`CascadeScaleOutput` from what :meth:`decode`
        gave."""
        out = super().scale_output(feats.attention_input, logits,
                                   with_attention)
        return CascadeScaleOutput(
            logits=out.logits,
            attention=out.attention,
            stage_logits=feats.stage_logits)

    def forward(self, inputs: List[Tensor]) -> Tensor:
        """The final logits, exactly as MMSeg's cascade computes them."""
        return self.decode(inputs)[1]


@MODELS.register_module()
class HMSACascadeEncoderDecoder(HMSAEncoderDecoder):
    """:class:`HMSAEncoderDecoder` for cascaded decode heads.

    MMSeg's OCRNet is a ``CascadeEncoderDecoder``: an FCN head predicts
    soft object regions that feed the OCR head. This segmentor builds the
    heads as MMSeg does (``decode_head`` is a list; parameter names
    ``decode_head.0.*``, ``decode_head.1.*``), so MMSeg's checkpoints load,
    and adds the attention branch of ``attention_cfg`` to the final head
    (``decode_head.<n-1>.attention.*``), where it reads the input of that
    head's classifier: for OCRNet the object-contextual features, as in
    NVIDIA's ``MscaleOCR``.

    Inference (every fusion rule, whole and slide, flip, per-scale outputs,
    tensor mode) fuses the final logits exactly as
    :class:`HMSAEncoderDecoder` does. Training fuses each earlier stage's
    logits with the same attention as the final logits and adds their loss
    under ``decode.stage<i>.*`` (with several pairs ``decode_<pair>.stage<i>
    .*``), weighted by that head's own ``loss_decode`` (0.4 for OCRNet's
    soft regions, as NVIDIA weighs its fused auxiliary logits). The
    per-scale loss (``scale_loss_weight``) is taken on the final logits
    only, as NVIDIA does. Attention-only training keeps every head frozen;
    the earlier stages' fused losses then also train the branch.

    Args:
        num_stages (int): Number of cascaded heads (at least 2).
        **kwargs: The arguments of :class:`HMSAEncoderDecoder`, with
            ``decode_head`` a list of ``num_stages`` head configs, as for
            MMSeg's ``CascadeEncoderDecoder``. ``attention_cfg`` adds the
            branch to the final head; None: no branch (``mean`` and ``max``
            fusion only).
    """

    def __init__(self, num_stages: int, **kwargs) -> None:
        if int(num_stages) < 2:
            raise ValueError(
                f'num_stages must be >= 2 for a cascade, got {num_stages}')
        self.num_stages = int(num_stages)
        super().__init__(**kwargs)

    def _init_decode_head(self, decode_head: ConfigType) -> None:
        """Build the heads as MMSeg's ``CascadeEncoderDecoder`` does."""
        CascadeEncoderDecoder._init_decode_head(self, decode_head)

    def _init_attention_head(
            self,
            attention_cfg: OptConfigType) -> Optional[CascadeAttention]:
        if attention_cfg is None:
            return None
        return CascadeAttention(self.decode_head, attention_cfg)

    @property
    def final_head(self) -> nn.Module:
        """The last head of the cascade."""
        return self.decode_head[-1]

    @property
    def final_head_prefix(self) -> str:
        return f'decode_head.{len(self.decode_head) - 1}.'

    def _decode_logits(self, feats: List[Tensor]) -> Tensor:
        stages = earlier_stage_logits(self.decode_head, feats)
        return self.final_head.forward(feats, stages[-1])

    def single_scale_forward(self, inputs: Tensor) -> Tensor:
        """The final head's logits on the input as it is: what
        ``mode='tensor'`` gives for MMSeg's ``CascadeEncoderDecoder``."""
        return CascadeEncoderDecoder._forward(self, inputs)

    def _fused_loss(self,
                    outputs: Dict[float, CascadeScaleOutput],
                    data_samples: SampleList,
                    explicit: bool = False) -> dict:
        """The final head's loss on the fused logits, and each earlier
        stage's loss on its logits fused with the same attention."""
        fused, used = self._train_fuse(outputs, explicit)
        losses = self.final_head.loss_by_feat(fused, data_samples)
        fuse_stage = explicit_fuse if explicit else hierarchical_fuse
        for i, head in enumerate(self.decode_head[:-1]):
            stage = {
                s: ScaleOutput(
                    resize_to(out.stage_logits[i], out.logits.shape[-2:],
                              self.align_corners), used.get(s))
                for s, out in outputs.items()
            }
            losses.update(
                add_prefix(
                    head.loss_by_feat(
                        fuse_stage(stage, self.align_corners), data_samples),
                    f'stage{i}'))
        return losses
