"""What every HMSA decode head adds to its MMSeg parent."""
from typing import List, Optional, Tuple

import torch
from mmseg.models.utils import resize
from mmseg.utils import OptConfigType
from torch import Tensor

from .attention_branch import AttentionBranch
from .fusion import ScaleOutput

#: What an attention branch can read (``attention_cfg.inputs``).
ATTENTION_INPUTS = ('features', 'probs', 'higher')


class AttentionHeadMixin:
    """Adds an attention branch to an MMSeg decode head.

    A head using it implements :meth:`decode`, which returns the features
    the attention reads and the class logits; everything else of the parent
    head (parameter names, ``forward``, losses) stays MMSeg's, so MMSeg
    checkpoints load and ``forward`` gives the stock logits.

    ``attention_cfg.inputs`` (default ``['features']``) says what the
    branch reads, concatenated in this order:

    - ``'features'``: the decoder features of :meth:`decode` (the paper);
    - ``'probs'``: the scale's own class probabilities, i.e. how sure the
      scale is of each pixel and of what;
    - ``'higher'``: the class probabilities of the prediction the scale is
      fused with (the chain's running prediction from the higher scales,
      resized to this scale's grid), so the branch weighs the two against
      each other. Such a branch reads no features: its attention is
      computed during fusion, from logits only (:meth:`attend_higher`).

    Probabilities enter without gradient: the attention loss reaches the
    rest of the network only through the fused logits, as in the paper.
    """

    def _init_attention(self, in_channels: int,
                        attention_cfg: OptConfigType) -> None:
        """Build the branch from ``attention_cfg`` (see the class doc)."""
        cfg = dict(attention_cfg or {})
        inputs = cfg.pop('inputs', ('features', ))
        if isinstance(inputs, str):
            inputs = (inputs, )
        inputs = tuple(inputs)
        unknown = [i for i in inputs if i not in ATTENTION_INPUTS]
        if not inputs or unknown or len(set(inputs)) != len(inputs):
            raise ValueError(
                'attention_cfg.inputs must be a non-empty list of distinct '
                f'entries of {", ".join(ATTENTION_INPUTS)}, got {inputs!r}')
        if 'higher' in inputs and 'features' in inputs:
            raise ValueError(
                'attention_cfg.inputs: a branch that reads "higher" is '
                'computed during fusion from logits only; it cannot also '
                f'read "features", got {inputs!r}')
        self.attention_inputs = tuple(i for i in ATTENTION_INPUTS
                                      if i in inputs)
        channels = {
            'features': in_channels,
            'probs': self.out_channels,
            'higher': self.out_channels
        }
        cfg.setdefault('norm_cfg', self.norm_cfg)
        cfg.setdefault('act_cfg', self.act_cfg)
        cfg.setdefault('conv_cfg', self.conv_cfg)
        self.attention = AttentionBranch(
            in_channels=sum(channels[i] for i in self.attention_inputs),
            **cfg)

    @property
    def attention_reads_higher(self) -> bool:
        """Whether the attention is computed during fusion
        (:meth:`attend_higher`) rather than per scale (:meth:`attend`)."""
        return 'higher' in self.attention_inputs

    def decode(self, inputs: List[Tensor]) -> Tuple[Tensor, Tensor]:
        """Return (features read by the attention branch, class logits)."""
        raise NotImplementedError

    def forward(self, inputs: List[Tensor]) -> Tensor:
        """Class logits, exactly as the parent MMSeg head computes them."""
        return self.decode(inputs)[1]

    def _probs(self, logits: Tensor, size) -> Tensor:
        return resize(
            logits.detach().softmax(dim=1),
            size=size,
            mode='bilinear',
            align_corners=self.align_corners)

    def attend(self, feats: Tensor, logits: Tensor) -> Tensor:
        """Attention map in (0, 1) from what :meth:`decode` gave.

        Raises:
            ValueError: for a branch that reads the higher scales'
                prediction (use :meth:`attend_higher`).
        """
        if self.attention_reads_higher:
            raise ValueError('this attention branch reads the prediction of '
                             'the higher scales: use attend_higher')
        parts = []
        if 'features' in self.attention_inputs:
            parts.append(feats)
        if 'probs' in self.attention_inputs:
            parts.append(self._probs(logits, feats.shape[2:]))
        return self.attention(torch.cat(parts, dim=1))

    def attend_higher(self, logits: Tensor, higher: Tensor) -> Tensor:
        """Attention of a scale against the prediction it is fused with.

        Args:
            logits (Tensor): The scale's logits (N, C, H, W).
            higher (Tensor): The running fused logits of the higher scales,
                on the same grid.

        Returns:
            Tensor: Attention (N, 1, H, W) in (0, 1) on that grid.
        """
        parts = []
        if 'probs' in self.attention_inputs:
            parts.append(self._probs(logits, logits.shape[2:]))
        parts.append(self._probs(higher, logits.shape[2:]))
        return self.attention(torch.cat(parts, dim=1))

    def scale_output(self, feats: Tensor, logits: Tensor,
                     with_attention: Optional[bool] = True) -> ScaleOutput:
        """A scale's output from what :meth:`decode` gave: its logits and,
        if asked, its attention (none for a branch that reads the higher
        scales: that comes during fusion)."""
        attention = None
        if with_attention and not self.attention_reads_higher:
            attention = self.attend(feats, logits)
        return ScaleOutput(logits=logits, attention=attention)

    def forward_scale(self,
                      inputs: List[Tensor],
                      with_attention: Optional[bool] = True) -> ScaleOutput:
        """Logits and attention of one scale (see :meth:`scale_output`)."""
        return self.scale_output(*self.decode(inputs), with_attention)
