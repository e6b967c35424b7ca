"""Multi-scale inference as pure functions: rescaling, slide windows,
flip-averaging, the per-scale run and the per-scale predictions.

The network enters as a function, ``run(image, with_attention) ->
ScaleOutput`` (one pass at the image as given, outputs on the decoder's
grid); nothing here reads a config or a module. The segmentor passes its
own forward pass and settings; the tests compare these functions with
results written out by hand.
"""
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample
from mmseg.utils import OptSampleList, SampleList
from torch import Tensor

from .fusion import ScaleOutput, resize_output, resize_to, scaled_size

#: A slide window ``(y1, y2, x1, x2)``.
Box = Tuple[int, int, int, int]
#: One network pass: (image, with_attention) -> its outputs.
RunFn = Callable[[Tensor, bool], ScaleOutput]


def rescale(inputs: Tensor, scale: float, rounding: str = 'round') -> Tensor:
    """``inputs`` bilinearly resized by ``scale`` (the size rounded by
    ``rounding``, see :func:`scaled_size`); scale 1 returns it as it is."""
    if scale == 1.0:
        return inputs
    size = scaled_size(inputs.shape[-2:], scale, rounding)
    return F.interpolate(
        inputs, size=size, mode='bilinear', align_corners=False)


def check_input_size(shape: Sequence[int], scales: Sequence[float],
                     rounding: str, min_size: int) -> None:
    """Refuse a batch that is not of shape (N, C, H, W), or whose images
    some scale shrinks below ``min_size`` pixels a side."""
    if len(shape) != 4:
        raise ValueError('inputs must be a batch of shape (N, C, H, W), '
                         f'got shape {tuple(shape)}')
    size = shape[-2:]
    for scale in scales:
        h, w = scaled_size(size, scale, rounding)
        if min(h, w) < min_size:
            raise ValueError(
                f'an image of {size[0]}x{size[1]} pixels becomes {h}x{w} '
                f'at scale {scale:g}, smaller than the {min_size} pixels a '
                'side the network needs (its output stride leaves too '
                'little to segment); use larger images or drop the small '
                'scales')


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


def slide(run: RunFn,
          inputs: Tensor,
          crop_size: Sequence[int],
          stride: Sequence[int],
          with_attention: bool = True,
          out_size: Optional[Sequence[int]] = None,
          align_corners: bool = False) -> ScaleOutput:
    """``run`` over MMSeg's slide windows, averaged where they overlap, on
    the input's pixel grid.

    With ``out_size`` an integer fraction ``1/k`` of the input size (and
    every window edge on a ``k``-pixel boundary, see :func:`block_factor`)
    each window is shrunk to that grid before it is accumulated: the result
    equals the full map shrunk to ``out_size``, at ``1/k^2`` of its memory.
    Otherwise the full map is kept.

    Returns:
        ScaleOutput: Logits and, when ``run`` gives it, attention.
    """
    n, _, h_img, w_img = inputs.shape
    boxes = slide_windows((h_img, w_img), crop_size, stride)
    k = 1 if out_size is None else block_factor((h_img, w_img), out_size,
                                                boxes)
    total = count = None
    for y1, y2, x1, x2 in boxes:
        out = run(inputs[:, :, y1:y2, x1:x2], with_attention)
        parts = [out.logits]
        if out.attention is not None:
            parts.append(out.attention)
        window = resize_to(
            torch.cat(parts, dim=1), (y2 - y1, x2 - x1), align_corners)
        if total is None:
            classes = out.logits.shape[1]
            total = inputs.new_zeros((n, window.shape[1], int(h_img) // k,
                                      int(w_img) // k))
            count = inputs.new_zeros((1, 1) + tuple(total.shape[-2:]))
        y1, y2, x1, x2 = y1 // k, y2 // k, x1 // k, x2 // k
        total[:, :, y1:y2, x1:x2] += resize_to(window, (y2 - y1, x2 - x1),
                                               align_corners)
        count[:, :, y1:y2, x1:x2] += 1
    total = total / count
    attention = total[:, classes:] if total.shape[1] > classes else None
    return ScaleOutput(logits=total[:, :classes], attention=attention)


def flip_average(out: ScaleOutput, flipped: ScaleOutput) -> ScaleOutput:
    """The mean of ``out`` and ``flipped`` (the outputs of the horizontally
    flipped image) flipped back."""
    logits = (out.logits + flipped.logits.flip(-1)) / 2
    attention = None if out.attention is None else (
        out.attention + flipped.attention.flip(-1)) / 2
    return ScaleOutput(logits=logits, attention=attention)


def run_scales(run: RunFn,
               inputs: Tensor,
               scales: Sequence[float],
               attention_scales: Optional[Sequence[float]] = None,
               rounding: str = 'round',
               fusion_grid: str = 'feature',
               slide_cfg: Optional[Tuple[Sequence[int],
                                         Sequence[int]]] = None,
               flip: bool = False,
               align_corners: bool = False) -> Dict[float, ScaleOutput]:
    """Run the network once per scale (and flip), without fusing.

    Args:
        run (callable): One network pass, ``run(image, with_attention)``.
        inputs (Tensor): Images of shape (N, 3, H, W).
        scales (Sequence[float]): The scales.
        attention_scales (Sequence[float], optional): The scales whose
            attention is computed; None: all.
        rounding (str): How a rescaled size is rounded (``'round'`` or
            ``'floor'``).
        fusion_grid (str): ``'feature'`` keeps each output on the decoder's
            grid, ``'image'`` resizes it to its rescaled image's size
            (whole inference; slide outputs are on the pixel grid anyway).
        slide_cfg (tuple, optional): ``(crop_size, stride)`` for slide
            inference; None: whole.
        flip (bool): Also run the flipped image and average
            (:func:`flip_average`).
        align_corners (bool): ``align_corners`` of the resizing.

    Returns:
        dict[float, ScaleOutput]: Each scale's outputs on its own grid. In
        slide mode a scale above 1 that is a whole multiple the windows
        respect is accumulated on the input's pixel grid, the grid the
        fusion reads it on.
    """
    wanted = set(
        scales if attention_scales is None else map(float, attention_scales))

    def one(x: Tensor, scale: float) -> ScaleOutput:
        x_s = rescale(x, scale, rounding)
        if slide_cfg is None:
            out = run(x_s, scale in wanted)
            if fusion_grid == 'image':
                out = resize_output(out, x_s.shape[-2:], align_corners)
            return out
        # the fusion reads a scale above 1 on the 1.0 grid only
        out_size = x.shape[-2:] if scale > 1 else None
        return slide(run, x_s, *slide_cfg, scale in wanted, out_size,
                     align_corners)

    outputs = {s: one(inputs, s) for s in scales}
    if flip:
        flipped = inputs.flip(-1)
        outputs = {s: flip_average(outputs[s], one(flipped, s))
                   for s in scales}
    return outputs


def image_metas(inputs: Tensor, data_samples: OptSampleList) -> List[dict]:
    """The samples' metainfo, or that of unpadded images of the input's
    size (as MMSeg's ``predict`` assumes without samples)."""
    if data_samples:
        return [s.metainfo for s in data_samples]
    size = tuple(int(x) for x in inputs.shape[2:])
    return [
        dict(
            ori_shape=size,
            img_shape=size,
            pad_shape=size,
            padding_size=[0, 0, 0, 0])
    ] * int(inputs.shape[0])


def add_scale_outputs(results: SampleList, per_scale: Dict[float,
                                                           ScaleOutput],
                      postprocess: Callable[[Tensor, OptSampleList],
                                            SampleList], restore: bool,
                      fusion: str) -> None:
    """Put each scale's post-processed outputs on the predictions.

    Each sample gets ``scale_outputs``: ``{scale: PixelData(seg_logits,
    pred_sem_seg, attention)}``, and the metainfo ``hmsa_scales`` and
    ``hmsa_fusion``. ``postprocess`` (the segmentor's MMSeg
    ``postprocess_result``) crops the padding, undoes the flip, resizes to
    the original size and predicts, as for the fused logits. An attention
    map goes through it as two equal channels, which it leaves as they are
    (one channel would be read as a binary logit).

    Args:
        results (list[SegDataSample]): The predictions.
        per_scale (dict[float, ScaleOutput]): Each scale's outputs at the
            size of the fused logits.
        postprocess (callable): ``postprocess_result(logits, samples)``.
        restore (bool): Whether ``results`` came with data samples (whose
            metainfo the post-processing reads).
        fusion (str): The fusion rule, for the metainfo.
    """

    def done(x: Tensor) -> SampleList:
        samples = [SegDataSample(metainfo=r.metainfo)
                   for r in results] if restore else None
        return postprocess(x, samples)

    outputs = [{} for _ in results]
    for scale, out in per_scale.items():
        logits = done(out.logits)
        maps = None if out.attention is None else done(
            torch.cat([out.attention, out.attention], dim=1))
        for i, sample in enumerate(logits):
            fields = dict(
                seg_logits=sample.seg_logits.data,
                pred_sem_seg=sample.pred_sem_seg.data)
            if maps is not None:
                fields['attention'] = maps[i].seg_logits.data[:1]
            outputs[i][scale] = PixelData(**fields)
    for sample, scale_outputs in zip(results, outputs):
        sample.scale_outputs = scale_outputs
        sample.set_metainfo(
            dict(hmsa_scales=list(per_scale), hmsa_fusion=fusion))
