"""Hierarchical multi-scale attention for cascaded decode heads (OCRNet)."""
from dataclasses import dataclass
from typing import Dict, List, Tuple

import torch.nn as nn
from mmseg.registry import MODELS
from mmseg.utils import ConfigType, SampleList, add_prefix
from torch import Tensor

from .attention_branch import read_features
from .fusion import ScaleOutput, fuse, fuse_with_attention, resize_to
from .hmsa_encoder_decoder import HMSAEncoderDecoder


@dataclass
class CascadeScaleOutput(ScaleOutput):
    """A scale's output of a cascade: the final logits and attention, and
    the logits of every earlier stage (OCRNet: the soft object regions).

    Attributes:
        stage_logits (tuple[Tensor]): Logits of stages ``0 .. n-2``.
    """

    stage_logits: Tuple[Tensor, ...] = ()


@MODELS.register_module()
class HMSACascadeEncoderDecoder(HMSAEncoderDecoder):
    """:class:`HMSAEncoderDecoder` for cascaded decode heads.

    MMSeg's OCRNet is a ``CascadeEncoderDecoder``: an FCN head predicts
    soft object regions that feed the OCR head. This segmentor builds and
    runs the heads as MMSeg's does (``decode_head`` is a list; parameter
    names ``decode_head.0.*``, ``decode_head.1.*``), so MMSeg's checkpoints
    load, and ``attention_cfg`` adds the branch to the final head
    (``decode_head.<n-1>.attention.*``), where it reads the input of that
    head's classifier: for OCRNet the object-contextual features, as in
    NVIDIA's ``MscaleOCR``.

    Inference fuses the final logits exactly as :class:`HMSAEncoderDecoder`
    does. Training fuses each earlier stage's logits with the same attention
    as the final logits and adds their loss under ``decode.stage<i>.*``
    (with several pairs ``decode_<pair>.stage<i>.*``), weighted by that
    head's own ``loss_decode`` (0.4 for OCRNet's soft regions, as NVIDIA
    weighs its fused auxiliary logits). The per-scale loss
    (``scale_loss_weight``) is taken on the final logits only, as NVIDIA
    does. Attention-only training keeps every head frozen; the earlier
    stages' fused losses then also train the branch.

    Args:
        num_stages (int): Number of cascaded heads (at least 2).
        **kwargs: The arguments of :class:`HMSAEncoderDecoder`, with
            ``decode_head`` a list of ``num_stages`` head configs, as for
            MMSeg's ``CascadeEncoderDecoder``.
    """

    def __init__(self, num_stages: int, **kwargs) -> None:
        if int(num_stages) < 2:
            raise ValueError(
                f'num_stages must be >= 2 for a cascade, got {num_stages}')
        self.num_stages = int(num_stages)
        super().__init__(**kwargs)

    def _init_decode_head(self, decode_head: ConfigType) -> None:
        """Build the heads as MMSeg's ``CascadeEncoderDecoder`` does."""
        if not isinstance(decode_head, (list, tuple)) \
                or len(decode_head) != self.num_stages:
            raise ValueError(
                f'decode_head must be a list of num_stages={self.num_stages} '
                f'head configs, got {decode_head!r}')
        self.decode_head = nn.ModuleList(
            MODELS.build(head) for head in decode_head)
        self.align_corners = self.decode_head[-1].align_corners
        self.num_classes = self.decode_head[-1].num_classes
        self.out_channels = self.decode_head[-1].out_channels

    def _decode(self, feats: List[Tensor]) -> Tuple[List[Tensor],
                                                    CascadeScaleOutput]:
        """Run the stages as MMSeg's cascade does: stage 0 reads the
        backbone features, each later stage also the previous logits."""
        stages = [self.decode_head[0].forward(feats)]
        for head in self.decode_head[1:-1]:
            stages.append(head.forward(feats, stages[-1]))
        with read_features(self.final_head) as read:
            logits = self.final_head.forward(feats, stages[-1])
        return read, CascadeScaleOutput(
            logits=logits, stage_logits=tuple(stages))

    def _fused_loss(self, outputs: Dict[float, CascadeScaleOutput],
                    data_samples: SampleList) -> dict:
        """The final head's loss on the fused logits, and each earlier
        stage's loss on its logits fused with the same attention."""
        rule = self.train_cfg.fusion
        fused, used = fuse_with_attention(outputs, rule, self.align_corners,
                                          self._attend_higher,
                                          self.fuse_finest)
        losses = self.final_head.loss_by_feat(fused, data_samples)
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
                        fuse(stage, rule, self.align_corners,
                             finest=self.fuse_finest), data_samples),
                    f'stage{i}'))
        return losses
