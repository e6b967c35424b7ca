"""The hierarchical multi-scale attention segmentor."""
import contextlib
import dataclasses
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmseg.models.segmentors import EncoderDecoder
from mmseg.registry import MODELS
from mmseg.utils import (
    ConfigType,
    OptConfigType,
    OptMultiConfig,
    OptSampleList,
    SampleList,
    add_prefix,
)
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

from .attention_branch import (
    AttentionBranch,
    add_attention_branch,
    read_features,
)
from .checkpoint_report import explain_checkpoint
from .fusion import (
    ScaleOutput,
    fuse,
    fuse_with_attention,
    resize_output,
    resize_to,
)
from .inference import (
    add_scale_outputs,
    check_input_size,
    image_metas,
    rescale,
    run_scales,
)
from .settings import (
    check_fusion,
    check_scales,
    model_settings,
    own_loss_weight,
)

Scales = Tuple[float, ...]


def _detached(out: ScaleOutput) -> ScaleOutput:
    """``out`` with every tensor but the attention cut from the graph
    (``train_cfg.detach_scales``)."""
    def cut(value):
        if isinstance(value, Tensor):
            return value.detach()
        if isinstance(value, tuple):
            return tuple(cut(v) for v in value)
        return value

    return dataclasses.replace(
        out, **{
            f.name: cut(getattr(out, f.name))
            for f in dataclasses.fields(out) if f.name != 'attention'
        })


def weigh(losses: dict, weight: float) -> dict:
    """``losses`` with its ``loss*`` entries (also nested ones,
    ``name.loss*``) multiplied by ``weight``."""
    return {
        k: v * weight if k.rsplit('.', 1)[-1].startswith('loss') else v
        for k, v in losses.items()
    }


@MODELS.register_module()
class HMSAEncoderDecoder(EncoderDecoder):
    """Encoder-decoder with hierarchical multi-scale attention (Tao et al.,
    2020).

    One network (backbone, decode head, shared weights) runs on the image at
    several scales; an attention branch on the decode head
    (``decode_head.attention``, see :func:`add_attention_branch`) predicts a
    relative attention map per scale. Training fuses the 1.0 scale with a
    lower one; inference chains the same pairwise rule over any scales that
    hold 1.0, or takes the ``mean`` or ``max`` of the same per-scale logits.
    ``train_cfg`` and ``test_cfg``: see :mod:`projects.hmsa.models.settings`.
    :meth:`predict`, :meth:`inference` and :meth:`forward_scales` take other
    scales and fusion rules as arguments.

    Args:
        backbone, decode_head, neck, auxiliary_head, train_cfg, test_cfg,
            data_preprocessor, pretrained, init_cfg: As for
            :class:`EncoderDecoder`. The decode head is an HMSA head (which
            has its branch) or any MMSeg head (with ``attention_cfg`` for
            attention fusion; without, ``mean`` and ``max`` only). The
            auxiliary head is trained on the 1.0 scale's features.
        min_input_size (int): The smallest image side (after rescaling) the
            network accepts. Defaults to 32.
        attention_cfg (dict, optional): An attention branch for a decode
            head without one, reading its classifier's input: arguments of
            :class:`AttentionBranch` (``dict()`` for the default branch).
            Its parameters are ``decode_head.attention.*``; everything else
            keeps MMSeg's names. Defaults to None.
    """

    def __init__(self,
                 backbone: ConfigType,
                 decode_head: ConfigType,
                 neck: OptConfigType = None,
                 auxiliary_head: OptConfigType = None,
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 data_preprocessor: OptConfigType = None,
                 pretrained: Optional[str] = None,
                 init_cfg: OptMultiConfig = None,
                 min_input_size: int = 32,
                 attention_cfg: OptConfigType = None) -> None:
        super().__init__(
            backbone=backbone,
            decode_head=decode_head,
            neck=neck,
            auxiliary_head=auxiliary_head,
            train_cfg=train_cfg,
            test_cfg=test_cfg,
            data_preprocessor=data_preprocessor,
            pretrained=pretrained,
            init_cfg=init_cfg)
        if int(min_input_size) < 1:
            raise ValueError(
                f'min_input_size must be >= 1, got {min_input_size}')
        self.min_input_size = int(min_input_size)
        head = type(self.final_head).__name__
        if attention_cfg is not None:
            if self.with_attention:
                raise ValueError(
                    f'{head} has an attention branch of its own (its '
                    'attention_cfg); the segmentor\'s attention_cfg adds one '
                    'to a head without, e.g. the stock MMSeg head')
            add_attention_branch(self.final_head, attention_cfg)
        self.train_cfg, self.test_cfg = model_settings(
            train_cfg, test_cfg, self.attention_branch, head)
        if self.train_cfg.attention_only:
            for name, param in self.named_parameters():
                param.requires_grad_(name.startswith(self.attention_prefix))

    @property
    def final_head(self) -> nn.Module:
        """The head whose logits are the model's (a cascade's last)."""
        head = self.decode_head
        return head[-1] if isinstance(head, nn.ModuleList) else head

    @property
    def attention_branch(self) -> Optional[AttentionBranch]:
        """The final head's attention branch (None without one)."""
        branch = getattr(self.final_head, 'attention', None)
        return branch if isinstance(branch, AttentionBranch) else None

    @property
    def with_attention(self) -> bool:
        """Whether the model has an attention branch."""
        return self.attention_branch is not None

    @property
    def attention_reads_higher(self) -> bool:
        """Whether the branch reads the higher scales' prediction, so its
        attention is computed during fusion."""
        return self.with_attention and self.attention_branch.reads_higher

    @property
    def attention_prefix(self) -> str:
        """The state-dict prefix of the attention branch."""
        stage = f'{len(self.decode_head) - 1}.' if isinstance(
            self.decode_head, nn.ModuleList) else ''
        return f'decode_head.{stage}attention.'

    @property
    def _attend_higher(self) -> Optional[Callable[[Tensor, Tensor], Tensor]]:
        """The fusion's ``attend`` (None: each scale's ``attention``)."""
        return self.attention_branch.attend_higher \
            if self.attention_reads_higher else None

    @property
    def fuse_finest(self) -> bool:
        """Whether the scales are fused on the highest scale's grid
        (``test_cfg.fusion_grid='finest'``) rather than the 1.0 scale's."""
        return self.test_cfg.fusion_grid == 'finest'

    def _scales_and_fusion(self,
                           scales: Optional[Sequence[float]] = None,
                           fusion: Optional[str] = None) -> Tuple[Scales, str]:
        """The scales and fusion rule given as arguments, checked, or
        ``test_cfg``'s (checked when the model was built)."""
        if scales is None and fusion is None:
            return tuple(sorted(map(float, self.test_cfg.scales))), \
                self.test_cfg.fusion
        scales = check_scales(
            self.test_cfg.scales if scales is None else scales, 'scales')
        fusion = fusion or self.test_cfg.fusion
        check_fusion(fusion, len(scales), self.attention_branch,
                     type(self.final_head).__name__, 'fusion')
        return scales, fusion

    def train(self, mode: bool = True) -> 'HMSAEncoderDecoder':
        """Set train mode; with ``attention_only`` all but the attention
        branch stays in eval mode so BatchNorm statistics do not move, with
        ``norm_eval`` every BatchNorm layer outside the branch does."""
        super().train(mode)
        if mode and self.train_cfg.attention_only:
            for module in self.children():
                module.eval()
        if mode and self.train_cfg.norm_eval:
            for module in self.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        if mode and self.with_attention:
            self.attention_branch.train()
        return self

    def forward_scale(self,
                      inputs: Tensor,
                      with_attention: bool = True) -> ScaleOutput:
        """One pass of the network on ``inputs`` as they are: the logits
        and (if asked, and the branch computes it per scale) the attention
        on the decode head's grid."""
        read, out = self._decode(self.extract_feat(inputs))
        return self._attend(read, out, with_attention)

    def single_scale_forward(self, inputs: Tensor) -> Tensor:
        """The decode head's logits on the input as it is: what
        ``mode='tensor'`` gives for MMSeg's own segmentor."""
        return self.forward_scale(inputs, with_attention=False).logits

    def _decode(self, feats: List[Tensor]) -> Tuple[List[Tensor],
                                                    ScaleOutput]:
        """What the attention branch reads, and the decode head's logits."""
        with read_features(self.final_head) as read:
            logits = self.decode_head.forward(feats)
        return read, ScaleOutput(logits=logits)

    def _attend(self, read: List[Tensor], out: ScaleOutput,
                with_attention: bool) -> ScaleOutput:
        """``out`` with the attention of what :meth:`_decode` gave."""
        branch = self.attention_branch
        if not with_attention or branch is None or branch.reads_higher:
            return out
        if len(read) != 1:
            raise RuntimeError(
                f'{type(self.final_head).__name__} ran {branch.reads} '
                f'{len(read)} times in one forward pass; the attention '
                'branch reads the input of a single call. Use an HMSA head '
                'that declares the features its attention reads.')
        return dataclasses.replace(
            out, attention=branch.attend(read[0], out.logits))

    def forward_scales(
            self,
            inputs: Tensor,
            scales: Optional[Sequence[float]] = None,
            attention_scales: Optional[Sequence[float]] = None
    ) -> Dict[float, ScaleOutput]:
        """Each scale's outputs (``test_cfg.scales`` unless given) on its
        own grid, flip-averaged with ``test_cfg.flip`` (see
        :func:`run_scales`), not fused: :meth:`fuse_outputs` fuses them with
        any rule. ``attention_scales``: those whose attention is computed
        (None: all)."""
        scales = check_scales(scales, 'scales') if scales is not None \
            else self._scales_and_fusion()[0]
        return self._run_scales(inputs, scales, attention_scales)

    def _run_scales(self, inputs: Tensor, scales: Scales,
                    attention_scales: Optional[Sequence[float]]
                    ) -> Dict[float, ScaleOutput]:
        cfg = self.test_cfg
        check_input_size(inputs.shape, scales, cfg.scale_rounding,
                         self.min_input_size)
        return run_scales(
            self.forward_scale,
            inputs,
            scales,
            attention_scales,
            rounding=cfg.scale_rounding,
            fusion_grid=cfg.fusion_grid,
            slide_cfg=(cfg.crop_size,
                       cfg.stride) if cfg.mode == 'slide' else None,
            flip=bool(cfg.flip),
            align_corners=self.align_corners)

    def fuse_outputs(self, outputs: Dict[float, ScaleOutput],
                     fusion: str) -> Tensor:
        """Fuse per-scale outputs (:meth:`forward_scales`) with the rule
        ``fusion``, with this model's attention branch."""
        return fuse(outputs, fusion, self.align_corners, self._attend_higher,
                    self.fuse_finest)

    def multiscale_inference(
        self,
        inputs: Tensor,
        batch_img_metas: List[dict],
        scales: Optional[Sequence[float]] = None,
        fusion: Optional[str] = None,
        keep_scales: bool = False
    ) -> Tuple[Tensor, Optional[Dict[float, ScaleOutput]]]:
        """The fused logits at :meth:`output_size` and, with
        ``keep_scales``, every scale's outputs resized to it (else None).

        Only the attention the fusion reads is computed (none for ``mean``
        and ``max``, none at the highest scale), unless ``keep_scales``.
        """
        scales, fusion = self._scales_and_fusion(scales, fusion)
        if keep_scales or fusion == 'explicit':
            needed = None
        elif fusion == 'attention':
            needed = scales[:-1]  # the highest scale's is never used
        else:
            needed = ()
        outputs = self._run_scales(inputs, scales, needed)
        if keep_scales and self.attention_reads_higher:
            # the attention exists only inside the chain: keep what it used
            fused, used = fuse_with_attention(outputs, 'attention',
                                              self.align_corners,
                                              self._attend_higher,
                                              self.fuse_finest)
            if fusion != 'attention':
                fused = self.fuse_outputs(outputs, fusion)
            outputs = {
                s: ScaleOutput(logits=o.logits, attention=used.get(s))
                for s, o in outputs.items()
            }
        else:
            fused = self.fuse_outputs(outputs, fusion)
        size = self.output_size(inputs, batch_img_metas)
        fused = resize_to(fused, size, self.align_corners)
        if not keep_scales:
            return fused, None
        return fused, {
            s: resize_output(o, size, self.align_corners)
            for s, o in outputs.items()
        }

    def output_size(self, inputs: Tensor,
                    batch_img_metas: List[dict]) -> Tuple[int, int]:
        """The size MMSeg's whole/slide inference returns logits at."""
        if self.test_cfg.mode == 'slide':
            shape = inputs.shape[-2:]
        else:
            meta = batch_img_metas[0]
            shape = meta.get('pad_shape', meta.get('img_shape'))[:2]
        return tuple(int(x) for x in shape)

    def inference(self,
                  inputs: Tensor,
                  batch_img_metas: List[dict],
                  scales: Optional[Sequence[float]] = None,
                  fusion: Optional[str] = None) -> Tensor:
        """Fused logits of all scales (``test_cfg``'s unless given), at the
        padded input size."""
        return self.multiscale_inference(inputs, batch_img_metas, scales,
                                         fusion)[0]

    def _forward(self,
                 inputs: Tensor,
                 data_samples: OptSampleList = None) -> Tensor:
        """``mode='tensor'``, what export tools call: the fused logits of
        ``test_cfg``'s setting at the input size. Sizes are computed in
        Python, so a traced graph holds the input size it was traced with.
        """
        return self.inference(inputs, image_metas(inputs, data_samples))

    def predict(self,
                inputs: Tensor,
                data_samples: OptSampleList = None,
                scales: Optional[Sequence[float]] = None,
                fusion: Optional[str] = None) -> SampleList:
        """:meth:`EncoderDecoder.predict` with multi-scale fusion
        (``test_cfg``'s scales and rule unless given); with
        ``test_cfg.return_scales`` also each scale's outputs
        (:func:`add_scale_outputs`)."""
        keep = bool(self.test_cfg.return_scales)
        fused, per_scale = self.multiscale_inference(
            inputs, image_metas(inputs, data_samples), scales, fusion, keep)
        results = self.postprocess_result(fused, data_samples)
        if keep:
            add_scale_outputs(results, per_scale, self.postprocess_result,
                              data_samples is not None,
                              fusion or self.test_cfg.fusion)
        return results

    def loss(self, inputs: Tensor, data_samples: SampleList) -> dict:
        """Multi-scale training losses: ``decode.*`` on the fused logits
        (``decode_<lo>-<hi>.*`` per entry of several ``scale_pairs``,
        weighted by one over their number), ``scale_<s>.*`` on each scale's
        own logits and ``aux.*`` on the 1.0 scale's features; the last two
        not in attention-only training. With ``detach_scales`` the fused
        losses reach only the attention branch."""
        if not self.with_attention:
            raise ValueError(
                'HMSAEncoderDecoder training needs a decode head with an '
                f'attention branch; {type(self.final_head).__name__} has '
                'none (give the segmentor an attention_cfg, or use an HMSA '
                'head). A model without one can still be tested with fusion '
                '"mean" or "max".')
        cfg = self.train_cfg
        pairs = list(cfg.pairs)
        if cfg.pair_sampling == 'random' and len(pairs) > 1:
            pairs = [pairs[int(torch.randint(len(pairs), ()))]]
        scales = tuple(sorted({s for pair in pairs for s in pair}))
        check_input_size(inputs.shape, scales, self.test_cfg.scale_rounding,
                         self.min_input_size)
        # attention fusion reads no attention of an entry's highest scale
        last = None if cfg.fusion == 'explicit' else -1
        attend = {s for pair in pairs for s in pair[:last]}
        # the scales whose own loss trains the network (and whose features
        # the auxiliary head reads: 1.0's, or the trunk scale's)
        trained = scales if cfg.trunk_scale is None else (cfg.trunk_scale, )
        aux_scale = 1.0 if cfg.trunk_scale is None else cfg.trunk_scale
        outputs = {}
        for scale in scales:
            outputs[scale], feats = self._train_scale(inputs, scale,
                                                      scale in attend)
            if scale == aux_scale:
                feats_aux = feats
        fused = {s: _detached(o) for s, o in outputs.items()} \
            if cfg.detach_scales else outputs
        losses = {}
        for pair in pairs:
            terms = self._fused_loss({s: fused[s]
                                      for s in pair}, data_samples)
            if len(pairs) == 1:
                losses.update(add_prefix(terms, 'decode'))
            else:
                name = '-'.join(f'{s:g}' for s in pair)
                losses.update(
                    add_prefix(weigh(terms, 1 / len(pairs)), f'decode_{name}'))
        if cfg.attention_only:
            return losses
        for scale in trained:
            weight = own_loss_weight(cfg.loss_weights, scale, max(scales))
            if weight > 0:
                terms = self.final_head.loss_by_feat(outputs[scale].logits,
                                                     data_samples)
                losses.update(
                    add_prefix(weigh(terms, weight), f'scale_{scale}'))
        if self.with_auxiliary_head:
            losses.update(
                self._auxiliary_head_forward_train(feats_aux, data_samples))
        return losses

    def _train_scale(self, inputs: Tensor, scale: float,
                     with_attention: bool) -> Tuple[ScaleOutput, List[Tensor]]:
        """One scale's outputs, on the grid the fusion reads, and backbone
        features in a training step; in attention-only training, and at a
        scale other than ``trunk_scale``, all but the attention branch runs
        without autograd (and then in eval mode, as at test time)."""
        x = rescale(inputs, scale, self.test_cfg.scale_rounding)
        cfg = self.train_cfg
        frozen = cfg.attention_only or cfg.trunk_scale not in (None, scale)
        with self._as_at_test() if frozen else contextlib.nullcontext():
            feats = self.extract_feat(x)
            read, out = self._decode(feats)
        if self.train_cfg.detach_scales:
            read = [r.detach() for r in read]
        out = self._attend(read, out, with_attention)
        if self.test_cfg.fusion_grid == 'image':
            out = resize_output(out, x.shape[-2:], self.align_corners)
        return out, feats

    @contextlib.contextmanager
    def _as_at_test(self):
        """The network without autograd and in eval mode (BatchNorm on its
        running statistics, no dropout); each module's mode is restored
        after."""
        modes = [(m, m.training) for m in self.modules()]
        self.eval()
        try:
            with torch.no_grad():
                yield
        finally:
            for module, mode in modes:
                module.training = mode

    def _fused_loss(self, outputs: Dict[float, ScaleOutput],
                    data_samples: SampleList) -> dict:
        """The loss terms of one fusion of a training step's scales."""
        fused, _ = fuse_with_attention(outputs, self.train_cfg.fusion,
                                       self.align_corners,
                                       self._attend_higher, self.fuse_finest)
        return self.final_head.loss_by_feat(fused, data_samples)

    def _load_from_state_dict(self, state_dict, prefix, *args) -> None:
        if prefix == '':
            explain_checkpoint(self, state_dict,
                               self.attention_prefix[:-len('attention.')],
                               self.attention_prefix)
        super()._load_from_state_dict(state_dict, prefix, *args)
