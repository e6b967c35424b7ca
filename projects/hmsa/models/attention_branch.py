"""The attention branch, and the one way it is attached to a decode head.

:func:`add_attention_branch` gives any MMSeg decode head an
:class:`AttentionBranch` as its ``attention`` submodule. The branch reads
the input of one of the head's submodules, collected with a forward
pre-hook while the head's own ``forward`` runs (:func:`read_features`):
by default the classifier's input (what ``cls_seg`` is called with); the
HMSA heads name another (DeepLabV3+: the decoder's concatenated ASPP and
low-level features). The head's ``forward``, parameter names and logits
stay MMSeg's; only ``attention.*`` is new.
"""
import contextlib
from typing import Iterator, List, Optional, Sequence

import torch
import torch.nn as nn
from mmcv.cnn import ConvModule, DepthwiseSeparableConvModule
from mmengine.model import BaseModule
from mmseg.models.utils import resize
from mmseg.utils import ConfigType, OptConfigType
from torch import Tensor

ATTENTION_TYPES = ('bottleneck', 'separable', 'paper')
#: What an attention branch can read (``attention_cfg.inputs``).
ATTENTION_INPUTS = ('features', 'probs', 'higher')


def _check_inputs(inputs) -> tuple:
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
    return tuple(i for i in ATTENTION_INPUTS if i in inputs)


class AttentionBranch(BaseModule):
    """Predicts a scale's relative attention ``a_s`` in (0, 1).

    Conv-BN-ReLU blocks, a 1x1 convolution to one channel and a sigmoid.
    ``type`` picks the blocks:

    - ``'bottleneck'`` (default): a 1x1 conv that reduces its input to
      ``channels`` (64), then ``num_convs`` (1) 3x3 convs on those. The
      cheapest of the three.
    - ``'separable'``: ``num_convs`` (2) depthwise-separable 3x3 convs, like
      the rest of the DeepLabV3+ head, at ``channels`` (64). Fewest
      parameters, but a depthwise 3x3 over all the decoder's channels is
      memory-bound on a CPU.
    - ``'paper'``: ``num_convs`` (2) full 3x3 convs at ``channels`` (256)
      and a last 1x1 convolution without bias, as in the paper and in
      NVIDIA's ``make_attn_head``.

    Timed alone on MobileNetV2 DeepLabV3+'s decoder features of a 512x1024
    image on a 2-core CPU: bottleneck 0.33 s, separable 0.84 s, paper
    2.62 s, against roughly 8.5 s for the whole stock network.

    ``inputs`` says what the branch reads, concatenated in this order:

    - ``'features'``: the decode head's features (the paper);
    - ``'probs'``: the scale's own class probabilities, i.e. how sure the
      scale is of each pixel and of what;
    - ``'higher'``: the class probabilities of the prediction the scale is
      fused with (the chain's running prediction from the higher scales,
      resized to this scale's grid), so the branch weighs the two against
      each other. Such a branch reads no features: its attention is
      computed during fusion, from logits only (:meth:`attend_higher`).

    Probabilities enter without gradient: the attention loss reaches the
    rest of the network only through the fused logits, as in the paper.
    The last convolution starts near zero, so every attention map starts at
    about 0.5 and the attention fusion starts close to plain averaging.

    Args:
        in_channels (int): Channels of what the branch reads, all
            ``inputs`` together.
        channels (int, optional): Channels of the blocks. Defaults to 64
            for ``'bottleneck'`` and ``'separable'``, 256 for ``'paper'``.
        type (str): ``'bottleneck'``, ``'separable'`` or ``'paper'``.
            Defaults to ``'bottleneck'``.
        num_convs (int, optional): Number of 3x3 blocks. Defaults to 1 for
            ``'bottleneck'`` and 2 otherwise.
        bias (bool, optional): Whether the last 1x1 convolution has a bias.
            Defaults to False for ``'paper'`` and True otherwise.
        inputs (Sequence[str]): See above. Defaults to ``['features']``.
        align_corners (bool): ``align_corners`` of resizing probabilities
            (the head's). Defaults to False.
        conv_cfg (dict, optional): Config of the conv layers.
        norm_cfg (dict, optional): Config of the norm layers. Defaults to BN.
        act_cfg (dict): Config of the activation. Defaults to ReLU.
        init_cfg (dict, optional): Initialisation config.

    Attributes:
        reads (str): The head's submodule whose input is the branch's
            ``'features'`` (set by :func:`add_attention_branch`).
    """

    reads: Optional[str] = None

    def __init__(self,
                 in_channels: int,
                 channels: Optional[int] = None,
                 type: str = 'bottleneck',
                 num_convs: Optional[int] = None,
                 bias: Optional[bool] = None,
                 inputs: Sequence[str] = ('features', ),
                 align_corners: bool = False,
                 conv_cfg: OptConfigType = None,
                 norm_cfg: OptConfigType = dict(type='BN'),
                 act_cfg: ConfigType = dict(type='ReLU'),
                 init_cfg: OptConfigType = dict(
                     type='Normal', std=0.01,
                     override=dict(name='conv_attn'))):
        super().__init__(init_cfg)
        if type not in ATTENTION_TYPES:
            raise ValueError(f'unknown attention branch type {type!r}; '
                             f'expected one of {", ".join(ATTENTION_TYPES)}')
        if num_convs is None:
            num_convs = 1 if type == 'bottleneck' else 2
        if num_convs < 1:
            raise ValueError(f'num_convs must be >= 1, got {num_convs}')
        if channels is None:
            channels = 256 if type == 'paper' else 64
        self.type = type
        self.channels = channels
        self.inputs = _check_inputs(inputs)
        self.align_corners = align_corners
        common = dict(norm_cfg=norm_cfg, act_cfg=act_cfg)
        blocks = []
        cin = in_channels
        if type == 'bottleneck':
            blocks.append(
                ConvModule(cin, channels, 1, conv_cfg=conv_cfg, **common))
            cin = channels
        for _ in range(num_convs):
            if type == 'separable':
                blocks.append(
                    DepthwiseSeparableConvModule(
                        cin, channels, 3, padding=1, **common))
            else:
                blocks.append(
                    ConvModule(
                        cin,
                        channels,
                        3,
                        padding=1,
                        conv_cfg=conv_cfg,
                        **common))
            cin = channels
        self.convs = nn.Sequential(*blocks)
        if bias is None:
            bias = type != 'paper'
        self.conv_attn = nn.Conv2d(channels, 1, kernel_size=1, bias=bias)

    @property
    def reads_higher(self) -> bool:
        """Whether the attention is computed during fusion
        (:meth:`attend_higher`) rather than per scale (:meth:`attend`)."""
        return 'higher' in self.inputs

    def forward(self, x: Tensor) -> Tensor:
        """Attention map of shape (N, 1, H, W) in (0, 1) from what the
        branch reads, concatenated."""
        return self.conv_attn(self.convs(x)).sigmoid()

    def _probs(self, logits: Tensor, size) -> Tensor:
        return resize(
            logits.detach().softmax(dim=1),
            size=size,
            mode='bilinear',
            align_corners=self.align_corners)

    def attend(self, feats: Tensor, logits: Tensor) -> Tensor:
        """A scale's attention from the head's features and logits.

        Raises:
            ValueError: for a branch that reads the higher scales'
                prediction (use :meth:`attend_higher`).
        """
        if self.reads_higher:
            raise ValueError('this attention branch reads the prediction of '
                             'the higher scales: use attend_higher')
        parts = []
        if 'features' in self.inputs:
            parts.append(feats)
        if 'probs' in self.inputs:
            parts.append(self._probs(logits, feats.shape[2:]))
        return self(torch.cat(parts, dim=1))

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
        if 'probs' in self.inputs:
            parts.append(self._probs(logits, logits.shape[2:]))
        parts.append(self._probs(higher, logits.shape[2:]))
        return self(torch.cat(parts, dim=1))


def add_attention_branch(head: nn.Module,
                         attention_cfg: OptConfigType = None,
                         in_channels: Optional[int] = None,
                         reads: Optional[str] = None) -> AttentionBranch:
    """Give a decode head an attention branch, ``head.attention``.

    Args:
        head (nn.Module): An MMSeg decode head.
        attention_cfg (dict, optional): Arguments of :class:`AttentionBranch`
            (``in_channels`` and ``align_corners`` excepted); norm,
            activation and conv configs default to the head's.
        in_channels (int, optional): Channels of the features the branch
            reads. Needed with ``reads``; else the classifier's.
        reads (str, optional): The submodule of ``head`` whose input the
            branch reads; None: the classifier's input (``cls_seg``'s
            argument, which its ``dropout`` or else its ``conv_seg``
            receives).

    Returns:
        AttentionBranch: The branch, now a submodule of ``head``.
    """
    name = type(head).__name__
    if reads is None:
        if not isinstance(getattr(head, 'conv_seg', None), nn.Conv2d):
            raise ValueError(
                f'{name} has no conv_seg classifier for an attention branch '
                'to read the input of; use an HMSA head that declares its '
                'features')
        reads = 'conv_seg' if getattr(head, 'dropout', None) is None \
            else 'dropout'
        in_channels = head.conv_seg.in_channels
    if hasattr(head, 'attention'):
        raise ValueError(f'{name} already has an attention submodule')
    cfg = dict(attention_cfg or {})
    inputs = _check_inputs(cfg.pop('inputs', ('features', )))
    channels = dict(
        features=in_channels, probs=head.out_channels,
        higher=head.out_channels)
    for key in ('norm_cfg', 'act_cfg', 'conv_cfg'):
        cfg.setdefault(key, getattr(head, key))
    head.attention = AttentionBranch(
        in_channels=sum(channels[i] for i in inputs),
        inputs=inputs,
        align_corners=head.align_corners,
        **cfg)
    head.attention.reads = reads
    return head.attention


@contextlib.contextmanager
def read_features(head: nn.Module) -> Iterator[List[Tensor]]:
    """Collect what ``head``'s attention branch reads while the block runs
    (nothing for a head without one).

    A forward pre-hook on the submodule the branch reads (its ``reads``)
    records each input it is called with; the head computes exactly what
    it computes without the branch.
    """
    seen: List[Tensor] = []
    branch = getattr(head, 'attention', None)
    if not isinstance(branch, AttentionBranch):
        yield seen
        return
    handle = getattr(head, branch.reads).register_forward_pre_hook(
        lambda module, args: seen.append(args[0]))
    try:
        yield seen
    finally:
        handle.remove()
