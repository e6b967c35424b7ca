"""The hierarchical multi-scale attention segmentor."""
import logging
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.structures import PixelData
from mmseg.models.segmentors import EncoderDecoder
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg.utils import (
    ConfigType,
    OptConfigType,
    OptMultiConfig,
    OptSampleList,
    SampleList,
    add_prefix,
)
from torch import Tensor

from .fusion import (
    ScaleOutput,
    explicit_fuse,
    fuse,
    hierarchical_chain,
    hierarchical_fuse,
    resize_output,
    resize_to,
    scaled_size,
)
from .settings import check_scales, test_settings, train_settings

Box = Tuple[int, int, int, int]


def slide_windows(size: Sequence[int], crop: Sequence[int],
                  stride: Sequence[int]) -> List[Box]:
    """The windows ``(y1, y2, x1, x2)`` MMSeg's slide inference visits."""
    (h_img, w_img), (h_crop, w_crop), (h_stride, w_stride) = (
        [int(v) for v in size], crop, stride)
    h_grids = max(h_img - h_crop + h_stride - 1, 0) // h_stride + 1
    w_grids = max(w_img - w_crop + w_stride - 1, 0) // w_stride + 1
    boxes = []
    for i in range(h_grids):
        for j in range(w_grids):
            y2 = min(i * h_stride + h_crop, h_img)
            x2 = min(j * w_stride + w_crop, w_img)
            boxes.append((max(y2 - h_crop, 0), y2, max(x2 - w_crop, 0), x2))
    return boxes


def block_factor(size: Sequence[int], out_size: Sequence[int],
                 boxes: Sequence[Box]) -> int:
    """The integer ``k`` by which ``size`` is ``out_size`` when every window
    edge falls on a ``k`` x ``k`` block boundary, else 1.

    Bilinear down-sizing by an integer factor reads each output pixel from
    its own block only, so windows can then be shrunk one by one and
    accumulated on the small grid with the result of shrinking the whole
    accumulated map.
    """
    h, w = (int(v) for v in size)
    out_h, out_w = (int(v) for v in out_size)
    k = h // out_h
    if k < 2 or h != k * out_h or w != k * out_w:
        return 1
    if any(v % k for box in boxes for v in box):
        return 1
    return k


@MODELS.register_module()
class HMSAEncoderDecoder(EncoderDecoder):
    """Encoder-decoder with hierarchical multi-scale attention.

    One network (backbone, decode head, shared weights) runs on the image at
    several scales; the decode head (an HMSA head such as
    :class:`HMSASepASPPHead`) also predicts a relative attention map per
    scale. Training fuses the 1.0 scale with one lower scale; inference
    chains the same pairwise rule over any list of scales that contains
    1.0, or averages (``mean``) or takes the maximum (``max``) of the same
    per-scale logits. Everything :class:`EncoderDecoder` accepts keeps
    working.

    ``train_cfg`` keys:

    - ``lo_scale`` (float, 0.5): the lower training scale, in (0, 1);
      shorthand for ``scale_pairs=[[lo_scale, 1.0]]``.
    - ``scale_pairs`` (list of [lo, hi], optional): the adjacent scale
      pairs trained with the pairwise rule; each holds 1.0 (``[0.5, 1.0]``,
      ``[1.0, 2.0]``). A pair above 1.0 trains the attention of 1.0 against
      2.0, which inference over 0.5, 1, 2 uses. An entry may also be a
      longer chain, e.g. ``[0.5, 1.0, 2.0]``, fused exactly as inference
      chains it. Overrides ``lo_scale``.
    - ``pair_sampling`` (str, 'all'): ``'all'`` fuses and averages every
      pair's loss in each step; ``'random'`` draws one pair per step.
    - ``fusion`` (str, 'hierarchical'): ``'explicit'`` trains the explicit
      attention of Chen et al. (2016) instead: every scale of
      ``explicit_scales`` (default [0.5, 1.0, 2.0]) in each step, fused by
      a softmax over the scales' attention scores (test with
      ``fusion='explicit'`` over the same scales).
    - ``scale_loss_weight`` (float or [float, float], 0.05): weight of the
      supervised loss on each scale's own logits (``[w_lo, w_1]`` for one
      each, with a single pair); 0 switches it off.
    - ``attention_only`` (bool, False): train only the attention branch.
      Backbone, neck, decoder and auxiliary heads are frozen in eval mode
      (BatchNorm statistics included) and run without autograd.
    - ``fusion_grid``, ``scale_rounding`` (str, optional): as in
      ``test_cfg``; None (the default) uses ``test_cfg``'s, so a model
      trains with the fusion it is tested with unless told otherwise.

    ``test_cfg`` keys (besides MMSeg's ``mode``, ``crop_size``, ``stride``):

    - ``scales`` (list[float], [1.0]): inference scales; must hold 1.0.
    - ``fusion`` (str, 'attention'): 'attention', 'explicit', 'mean' or
      'max'.
    - ``flip`` (bool, False): also run on the horizontally flipped image and
      average each scale's logits and attention before fusing.
    - ``return_scales`` (bool, False): put each scale's logits, prediction
      and attention on the output data samples as ``scale_outputs``.
    - ``fusion_grid`` (str, 'feature'): where the scales are fused.
      ``'feature'`` fuses each scale's logits and attention on the decode
      head's output grid (stride 4 for DeepLabV3+), and resizes only the
      fused logits to the image. ``'image'`` first resizes each scale's
      logits and attention to that scale's input size, then fuses, as
      NVIDIA's ``nscale_forward`` does: the per-scale maps are
      ``stride**2`` times larger (16x at stride 4; at scale 2 of a
      1024x2048 image one 19-class map is 0.64 GB in float32), and the
      fusion and the resizing cost as much more. Slide inference already
      accumulates each scale on its input's pixel grid, so the option only
      changes whole inference.
    - ``scale_rounding`` (str, 'round'): how a scaled image's size is
      rounded to whole pixels; ``'floor'`` is ``F.interpolate(
      scale_factor=s, recompute_scale_factor=True)``'s, NVIDIA's. No cost.
      ``fusion_grid='image'`` with ``scale_rounding='floor'`` is NVIDIA's
      inference exactly.

    Args:
        backbone (dict): Backbone config.
        decode_head (dict): Decode head config; an HMSA head for attention
            fusion, any MMSeg head for ``mean``/``max``.
        neck (dict, optional): Neck config.
        auxiliary_head (dict, optional): Auxiliary head config; trained on
            the 1.0 scale's features, as in MMSeg.
        train_cfg (dict, optional): See above.
        test_cfg (dict, optional): See above.
        data_preprocessor (dict, optional): Data preprocessor config.
        pretrained (str, optional): Pretrained backbone weights.
        init_cfg (dict, optional): Initialisation config.
        min_input_size (int): The smallest image side (after rescaling) the
            network accepts. Defaults to 32.
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
                 min_input_size: int = 32) -> None:
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
        self.train_cfg = train_settings(train_cfg)
        self.test_cfg = test_settings(test_cfg)
        self._check_settings()
        if self.attention_only:
            self._freeze_all_but_attention()

    # ------------------------------------------------------------------
    # configuration
    # ------------------------------------------------------------------
    @property
    def with_attention(self) -> bool:
        """Whether the decode head has an attention branch."""
        return hasattr(self.decode_head, 'forward_scale')

    @property
    def attention_reads_higher(self) -> bool:
        """Whether the attention is computed during fusion, from a scale's
        logits and the higher scales' prediction (``attention_cfg.inputs``
        holds ``'higher'``), rather than with each scale's outputs."""
        return self.with_attention and self.decode_head.attention_reads_higher

    def _attend_fn(self):
        """What the hierarchical fusion computes attention with (None: it
        reads each scale's own ``attention``)."""
        return self.decode_head.attend_higher \
            if self.attention_reads_higher else None

    def fuse_outputs(self, outputs: Dict[float, ScaleOutput],
                     rule: str) -> Tensor:
        """Fuse per-scale outputs (:meth:`forward_scales`) with ``rule``,
        with this model's attention branch."""
        return fuse(outputs, rule, self.align_corners, self._attend_fn())

    @property
    def attention_only(self) -> bool:
        """Whether training updates only the attention branch."""
        return bool(self.train_cfg.attention_only)

    def _check_settings(self) -> Tuple[Tuple[float, ...], str]:
        """Check the settings against this model's head; return the test
        (scales, fusion). ``test_cfg`` may change after building (the tools
        set it), so inference checks it again."""
        self.test_cfg = test_settings(self.test_cfg)
        scales, fusion = check_scales(self.test_cfg.scales), \
            self.test_cfg.fusion
        head = type(self.decode_head).__name__
        if fusion in ('attention', 'explicit') and len(scales) > 1 \
                and not self.with_attention:
            raise ValueError(
                f'test_cfg.fusion="{fusion}" needs a decode head with an '
                f'attention branch; {head} has none (use fusion "mean" or '
                '"max", or an HMSA head)')
        if self.attention_reads_higher and 'explicit' in (
                fusion, self.train_cfg.fusion):
            key = 'test_cfg' if fusion == 'explicit' else 'train_cfg'
            raise ValueError(
                f'{key}.fusion="explicit" needs an attention score per '
                'scale; this branch reads the higher scales\' prediction '
                '(attention_cfg.inputs holds "higher"): use "attention"')
        if self.attention_only and not self.with_attention:
            raise ValueError(
                'train_cfg.attention_only=True needs a decode head with an '
                f'attention branch; {head} has none (use HMSASepASPPHead or '
                'HMSAASPPHead)')
        return scales, fusion

    def _train_option(self, name: str) -> str:
        """``train_cfg``'s ``fusion_grid`` or ``scale_rounding``, else
        ``test_cfg``'s."""
        value = self.train_cfg.get(name)
        return self.test_cfg[name] if value is None else value

    def _check_input_size(self, size: Sequence[int], scales: Sequence[float],
                          rounding: str) -> None:
        for scale in scales:
            h, w = scaled_size(size, scale, rounding)
            if min(h, w) < self.min_input_size:
                raise ValueError(
                    f'an image of {size[0]}x{size[1]} pixels becomes {h}x{w} '
                    f'at scale {scale:g}, smaller than the '
                    f'{self.min_input_size} pixels a side the network needs '
                    '(its output stride leaves too little to segment); use '
                    'larger images or drop the small scales')

    # ------------------------------------------------------------------
    # attention-only training
    # ------------------------------------------------------------------
    def _is_attention_param(self, name: str) -> bool:
        return name.startswith('decode_head.attention.')

    def _freeze_all_but_attention(self) -> None:
        for name, param in self.named_parameters():
            param.requires_grad_(self._is_attention_param(name))

    def train(self, mode: bool = True) -> 'HMSAEncoderDecoder':
        """Set train mode; with ``attention_only`` all but the attention
        branch stays in eval mode so BatchNorm statistics do not move."""
        super().train(mode)
        if mode and self.attention_only:
            for module in self.children():
                module.eval()
            self.decode_head.attention.train()
        return self

    # ------------------------------------------------------------------
    # per-scale forward passes
    # ------------------------------------------------------------------
    def _rescale(self, inputs: Tensor, scale: float, rounding: str) -> Tensor:
        if scale == 1.0:
            return inputs
        size = scaled_size(inputs.shape[-2:], scale, rounding)
        return F.interpolate(
            inputs, size=size, mode='bilinear', align_corners=False)

    def _encode_decode_scale(self,
                             inputs: Tensor,
                             with_attention: bool = True) -> ScaleOutput:
        """One pass of the network: logits and (if asked and the head has a
        branch) attention on the decoder's grid."""
        feats = self.extract_feat(inputs)
        if self.with_attention:
            return self.decode_head.forward_scale(
                feats, with_attention=with_attention)
        return ScaleOutput(logits=self.decode_head.forward(feats))

    def _slide_scale(self,
                     inputs: Tensor,
                     with_attention: bool = True,
                     out_size: Optional[Sequence[int]] = None) -> ScaleOutput:
        """Sliding-window :meth:`_encode_decode_scale`, averaged where
        windows overlap, on the input's pixel grid.

        With ``out_size`` an integer fraction ``1/k`` of the input size (and
        every window edge on a ``k``-pixel boundary) each window is shrunk
        to that grid before it is accumulated: the result equals the full
        map shrunk to ``out_size``, at ``1/k^2`` of its memory. Otherwise
        the full map is kept.
        """
        n, _, h_img, w_img = inputs.shape
        boxes = slide_windows((h_img, w_img), self.test_cfg.crop_size,
                              self.test_cfg.stride)
        k = 1 if out_size is None else block_factor(
            (h_img, w_img), out_size, boxes)
        with_attention = with_attention and self.with_attention \
            and not self.attention_reads_higher
        channels = self.out_channels + int(with_attention)
        total = inputs.new_zeros((n, channels, int(h_img) // k,
                                  int(w_img) // k))
        count = inputs.new_zeros((1, 1) + tuple(total.shape[-2:]))
        for y1, y2, x1, x2 in boxes:
            out = self._encode_decode_scale(inputs[:, :, y1:y2, x1:x2],
                                            with_attention)
            parts = [out.logits]
            if out.attention is not None:
                parts.append(out.attention)
            window = resize_to(
                torch.cat(parts, dim=1), (y2 - y1, x2 - x1),
                self.align_corners)
            y1, y2, x1, x2 = y1 // k, y2 // k, x1 // k, x2 // k
            total[:, :, y1:y2, x1:x2] += resize_to(window, (y2 - y1, x2 - x1),
                                                   self.align_corners)
            count[:, :, y1:y2, x1:x2] += 1
        total = total / count
        logits = total[:, :self.out_channels]
        attention = total[:, self.out_channels:] if with_attention else None
        return ScaleOutput(logits=logits, attention=attention)

    @staticmethod
    def _flip_back(out: ScaleOutput) -> ScaleOutput:
        return ScaleOutput(
            logits=out.logits.flip(-1),
            attention=None
            if out.attention is None else out.attention.flip(-1))

    @staticmethod
    def _average(a: ScaleOutput, b: ScaleOutput) -> ScaleOutput:
        return ScaleOutput(
            logits=(a.logits + b.logits) / 2,
            attention=None
            if a.attention is None else (a.attention + b.attention) / 2)

    def forward_scales(
            self,
            inputs: Tensor,
            attention_scales: Optional[Sequence[float]] = None
    ) -> Dict[float, ScaleOutput]:
        """Run the network once per test scale (and flip), without fusing.

        Every fusion rule can then be applied to the same outputs with
        :func:`fuse`; :meth:`multiscale_inference` does exactly that.

        Args:
            inputs (Tensor): Images of shape (N, 3, H, W).
            attention_scales (Sequence[float], optional): The scales whose
                attention is computed; None: all (when the head has an
                attention branch).

        Returns:
            dict[float, ScaleOutput]: Each test scale's logits and attention
            on its own grid (in whole mode the feature grid, or with
            ``test_cfg.fusion_grid='image'`` the rescaled image's; in slide
            mode the rescaled image's pixel grid, except that a scale above 1
            is accumulated on the input's pixel grid, the grid the fusion
            reads it on, when the scale is a whole multiple the windows
            respect),
            flip-averaged when ``test_cfg.flip``.
        """
        scales, _ = self._check_settings()
        if inputs.dim() != 4:
            raise ValueError('inputs must be a batch of shape (N, C, H, W), '
                             f'got shape {tuple(inputs.shape)}')
        rounding = self.test_cfg.scale_rounding
        self._check_input_size(inputs.shape[-2:], scales, rounding)
        wanted = set(scales if attention_scales is None else
                     (float(s) for s in attention_scales))
        slide = self.test_cfg.mode == 'slide'
        on_image = self.test_cfg.fusion_grid == 'image'

        def run(x: Tensor, scale: float) -> ScaleOutput:
            x_s = self._rescale(x, scale, rounding)
            if not slide:
                out = self._encode_decode_scale(x_s, scale in wanted)
                return resize_output(out, x_s.shape[-2:],
                                     self.align_corners) if on_image else out
            # the fusion reads a scale above 1 on the 1.0 grid only
            out_size = x.shape[-2:] if scale > 1 else None
            return self._slide_scale(x_s, scale in wanted, out_size)

        def run_all(x: Tensor) -> Dict[float, ScaleOutput]:
            return {s: run(x, s) for s in scales}

        outputs = run_all(inputs)
        if self.test_cfg.get('flip', False):
            flipped = run_all(inputs.flip(-1))
            outputs = {
                s: self._average(outputs[s], self._flip_back(flipped[s]))
                for s in scales
            }
        return outputs

    def multiscale_inference(
        self,
        inputs: Tensor,
        batch_img_metas: List[dict],
        keep_scales: bool = False
    ) -> Tuple[Tensor, Optional[Dict[float, ScaleOutput]]]:
        """Run every test scale and fuse them.

        Only the attention the fusion reads is computed (none for ``mean``
        and ``max``, none at the highest scale), unless ``keep_scales``
        asks for all of it.

        Args:
            inputs (Tensor): Images of shape (N, 3, H, W).
            batch_img_metas (list[dict]): Image meta information.
            keep_scales (bool): Also return the per-scale outputs.

        Returns:
            tuple: The fused logits at the output size MMSeg's own
            ``inference`` gives (the padded input size), and, with
            ``keep_scales``, the per-scale outputs resized to that size
            (else None).
        """
        scales, fusion = self._check_settings()
        if keep_scales or fusion == 'explicit':
            needed = None
        elif fusion == 'attention':
            needed = scales[:-1]  # the highest scale's is never used
        else:
            needed = ()
        outputs = self.forward_scales(inputs, needed)
        if keep_scales and self.attention_reads_higher:
            # the attention exists only inside the chain: keep what it used
            fused, used = hierarchical_chain(outputs, self.align_corners,
                                             attend=self._attend_fn())
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
        resized = {
            s: resize_output(o, size, self.align_corners)
            for s, o in outputs.items()
        }
        return fused, resized

    def output_size(self, inputs: Tensor,
                    batch_img_metas: List[dict]) -> Tuple[int, int]:
        """The size MMSeg's whole/slide inference returns logits at."""
        if self.test_cfg.mode == 'slide':
            shape = inputs.shape[-2:]
        else:
            meta = batch_img_metas[0]
            shape = meta.get('pad_shape', meta.get('img_shape'))[:2]
        return tuple(int(x) for x in shape)

    @staticmethod
    def _plain_metas(inputs: Tensor) -> List[dict]:
        """Image metas of unpadded, unflipped images of the input's size."""
        size = tuple(int(x) for x in inputs.shape[2:])
        return [
            dict(
                ori_shape=size,
                img_shape=size,
                pad_shape=size,
                padding_size=[0, 0, 0, 0])
        ] * int(inputs.shape[0])

    # ------------------------------------------------------------------
    # EncoderDecoder API
    # ------------------------------------------------------------------
    def inference(self, inputs: Tensor, batch_img_metas: List[dict]) -> Tensor:
        """Fused logits of all test scales, at the padded input size."""
        return self.multiscale_inference(inputs, batch_img_metas)[0]

    def _forward(self,
                 inputs: Tensor,
                 data_samples: OptSampleList = None) -> Tensor:
        """``mode='tensor'``: the fused logits of all test scales.

        This is what export tools (MMDeploy, ``torch.onnx``) call, so the
        exported graph is the multi-scale model with its ``test_cfg``
        (scales, fusion, whole or slide) and, since sizes are computed in
        Python, the input size it was traced with. The logits are at the
        input size, before any cropping of padding or resizing to the
        original image. :meth:`single_scale_forward` gives the decode
        head's logits at the input scale (MMSeg's own tensor mode).
        """
        metas = [s.metainfo for s in data_samples] if data_samples \
            else self._plain_metas(inputs)
        return self.inference(inputs, metas)

    def single_scale_forward(self, inputs: Tensor) -> Tensor:
        """The decode head's logits on the input as it is (no rescaling,
        no fusion): what ``mode='tensor'`` gives for MMSeg's
        :class:`EncoderDecoder`."""
        return super()._forward(inputs)

    def predict(self,
                inputs: Tensor,
                data_samples: OptSampleList = None) -> SampleList:
        """Predict with multi-scale fusion; see :class:`EncoderDecoder`.

        With ``test_cfg.return_scales`` each data sample also holds
        ``scale_outputs``: ``{scale: PixelData(seg_logits, pred_sem_seg,
        attention)}`` at the original image size, post-processed as MMSeg
        post-processes the fused logits.
        """
        batch_img_metas = [s.metainfo for s in data_samples] \
            if data_samples is not None else self._plain_metas(inputs)
        keep = bool(self.test_cfg.get('return_scales', False))
        fused, per_scale = self.multiscale_inference(inputs, batch_img_metas,
                                                     keep)
        results = self.postprocess_result(fused, data_samples)
        if keep:
            self._attach_scale_outputs(results, per_scale,
                                       data_samples is not None)
        return results

    def _attach_scale_outputs(self, results: SampleList,
                              per_scale: Dict[float, ScaleOutput],
                              restore: bool) -> None:
        """Put each scale's post-processed outputs on ``results``.

        :meth:`postprocess_result` (MMSeg's) crops the padding, undoes the
        flip, resizes to the original size and predicts, as for the fused
        logits. An attention map goes through it as two equal channels, which
        it leaves as they are (one channel would be read as a binary
        logit).
        """
        scales, fusion = self._check_settings()

        def postprocess(x: Tensor) -> SampleList:
            samples = [SegDataSample(metainfo=r.metainfo)
                       for r in results] if restore else None
            return self.postprocess_result(x, samples)

        outputs = [{} for _ in results]
        for scale, out in per_scale.items():
            done = postprocess(out.logits)
            maps = None if out.attention is None else postprocess(
                torch.cat([out.attention, out.attention], dim=1))
            for i, sample in enumerate(done):
                fields = dict(
                    seg_logits=sample.seg_logits.data,
                    pred_sem_seg=sample.pred_sem_seg.data)
                if maps is not None:
                    fields['attention'] = maps[i].seg_logits.data[:1]
                outputs[i][scale] = PixelData(**fields)
        for sample, scale_outputs in zip(results, outputs):
            sample.scale_outputs = scale_outputs
            sample.set_metainfo(
                dict(hmsa_scales=list(scales), hmsa_fusion=fusion))

    def _training_step_scales(
            self) -> Tuple[List[Tuple[float, ...]], Tuple[float, ...]]:
        """The pairs fused in this step (none for explicit training) and
        every scale the step runs."""
        if self.train_cfg.fusion == 'explicit':
            return [], self.train_cfg.explicit_scales
        pairs = list(self.train_cfg.pairs)
        if self.train_cfg.pair_sampling == 'random' and len(pairs) > 1:
            pairs = [pairs[int(torch.randint(len(pairs), ()))]]
        return pairs, tuple(sorted({s for pair in pairs for s in pair}))

    def _train_scale(self, inputs: Tensor, scale: float,
                     with_attention: bool) -> Tuple[ScaleOutput, List[Tensor]]:
        """One scale's outputs and backbone features in a training step.

        In attention-only training everything but the attention branch runs
        without autograd. The outputs are on the grid the training fusion
        reads (``fusion_grid``).
        """
        x = self._rescale(inputs, scale, self._train_option('scale_rounding'))
        if not self.attention_only:
            feats = self.extract_feat(x)
            out = self.decode_head.forward_scale(feats, with_attention)
        else:
            with torch.no_grad():
                feats = self.extract_feat(x)
                attn_in, logits = self.decode_head.decode(feats)
            # only the branch runs with autograd
            out = self.decode_head.scale_output(attn_in, logits,
                                                with_attention)
        if self._train_option('fusion_grid') == 'image':
            out = resize_output(out, x.shape[-2:], self.align_corners)
        return out, feats

    def loss(self, inputs: Tensor, data_samples: SampleList) -> dict:
        """Multi-scale training losses.

        Keys: ``decode.*`` on the fused logits (with several scale pairs in
        one step, ``decode_<lo>-<hi>.*`` per pair, each weighted by one over
        the number of pairs), ``scale_<s>.*`` on each scale's own logits
        (weighted by ``scale_loss_weight``, left out when it is 0 or in
        attention-only training) and ``aux.*`` from the auxiliary head on
        the 1.0 scale (left out in attention-only training, where it is
        frozen).
        """
        cfg = self.train_cfg
        if not self.with_attention:
            raise ValueError(
                'HMSAEncoderDecoder training needs a decode head with an '
                f'attention branch; {type(self.decode_head).__name__} has '
                'none (use HMSASepASPPHead or HMSAASPPHead). A head without '
                'one can still be tested with fusion "mean" or "max".')
        pairs, scales = self._training_step_scales()
        self._check_input_size(inputs.shape[-2:], scales,
                               self._train_option('scale_rounding'))
        explicit = cfg.fusion == 'explicit'
        # a pair reads the attention of its lower scale only (a chain that
        # of every scale but its highest)
        attend = set(scales) if explicit else {
            s
            for pair in pairs for s in pair[:-1]
        }
        outputs = {}
        for scale in scales:
            outputs[scale], feats = self._train_scale(inputs, scale,
                                                      scale in attend)
            if scale == 1.0:
                feats_hi = feats

        losses = {}
        if explicit:
            fused = explicit_fuse(outputs, self.align_corners)
            losses.update(
                add_prefix(
                    self.decode_head.loss_by_feat(fused, data_samples),
                    'decode'))
        for pair in pairs:
            fused = hierarchical_fuse({s: outputs[s]
                                       for s in pair},
                                      self.align_corners,
                                      attend=self._attend_fn())
            terms = self.decode_head.loss_by_feat(fused, data_samples)
            if len(pairs) == 1:
                losses.update(add_prefix(terms, 'decode'))
            else:
                name = '-'.join(f'{s:g}' for s in pair)
                losses.update(
                    add_prefix(
                        self._weigh(terms, 1 / len(pairs)),
                        f'decode_{name}'))
        if self.attention_only:
            return losses
        w_lo, w_hi = cfg.loss_weights
        for scale in scales:
            weight = w_hi if scale == max(scales) else w_lo
            if weight > 0:
                terms = self.decode_head.loss_by_feat(outputs[scale].logits,
                                                      data_samples)
                losses.update(
                    add_prefix(self._weigh(terms, weight), f'scale_{scale}'))
        if self.with_auxiliary_head:
            losses.update(
                self._auxiliary_head_forward_train(feats_hi, data_samples))
        return losses

    @staticmethod
    def _weigh(terms: dict, weight: float) -> dict:
        """Multiply the ``loss*`` entries of a loss dict by ``weight``."""
        return {
            k: v * weight if k.startswith('loss') else v
            for k, v in terms.items()
        }

    # ------------------------------------------------------------------
    # checkpoints
    # ------------------------------------------------------------------
    def _load_from_state_dict(self, state_dict, prefix, local_metadata,
                              strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        if prefix == '':
            self._explain_checkpoint(state_dict)
        super()._load_from_state_dict(state_dict, prefix, local_metadata,
                                      strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def _explain_checkpoint(self, state_dict: dict) -> None:
        """Say in words how a checkpoint differs from this model.

        Loading itself is MMEngine's (and PyTorch's): tensors whose shapes
        do not fit are skipped and reported, or refused with
        ``strict=True``. This adds what those messages leave to the reader:
        a checkpoint of another class count, one of another network, and the
        attention branch a single-scale checkpoint cannot have.
        """
        own = self.state_dict()
        common = [k for k in state_dict if k in own]
        if state_dict and not common:
            print_log(
                'the checkpoint does not fit this model: none of its '
                f'{len(state_dict)} parameter names matches (checkpoint has '
                f'e.g. {next(iter(state_dict))!r}, the model e.g. '
                f'{next(iter(own))!r}); nothing is loaded',
                logger='current',
                level=logging.WARNING)
            return
        classes = getattr(state_dict.get('decode_head.conv_seg.weight'),
                          'shape', (self.out_channels, ))[0]
        if classes != self.out_channels:
            print_log(
                f'the checkpoint predicts {classes} classes, the model '
                f'{self.out_channels} (decode_head.num_classes): its '
                'classifiers are not loaded and start from their '
                'initialisation (fine-tuning to another class count); '
                'strict loading refuses such a checkpoint',
                logger='current',
                level=logging.WARNING)
        missing_attention = [
            k for k in own
            if self._is_attention_param(k) and k not in state_dict
        ]
        if missing_attention:
            print_log(
                f'HMSA: the checkpoint has no attention branch '
                f'({len(missing_attention)} tensors under '
                'decode_head.attention): it starts from its initialisation; '
                'everything else comes from the checkpoint.',
                logger='current')
