"""A visualizer that shows what each scale predicts and where it is trusted.

For a data sample carrying ``scale_outputs`` (an HMSA model run with
``test_cfg.return_scales=True``) it draws one picture, a grid of labelled
panels:

- row 1: the image, the ground truth (when present) and the fused prediction;
- row 2: each scale's own prediction;
- row 3: each scale's attention as a heat map (when the head has one);
- below: a legend of the classes the segmentation panels show, each name
  beside its palette colour.

The attention of the highest scale is never used by the hierarchical fusion;
its panel says so.
"""
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import cv2
import mmcv
import numpy as np
import torch
from mmengine.dist import master_only
from mmengine.structures import PixelData
from mmseg.registry import VISUALIZERS
from mmseg.structures import SegDataSample
from mmseg.visualization import SegLocalVisualizer

ATTENTION_NOTE = ('attention: weight of a scale\'s prediction against the '
                  'larger scales (1 = trusted, 0 = ignored)')


class Panel(NamedTuple):
    """One labelled picture of the grid.

    Attributes:
        caption (str): Text of the caption bar above the picture.
        image (np.ndarray): uint8 RGB picture (H, W, 3).
        heatmap (bool): Whether it is an attention heat map (its row then
            gets a 0..1 colour scale).
    """

    caption: str
    image: np.ndarray
    heatmap: bool = False


def _to_numpy(data) -> np.ndarray:
    if isinstance(data, torch.Tensor):
        return data.detach().float().cpu().numpy()
    return np.asarray(data)


def attention_heatmap(attention: np.ndarray,
                      image: Optional[np.ndarray] = None,
                      image_weight: float = 0.25,
                      colormap: int = cv2.COLORMAP_JET) -> np.ndarray:
    """Render an attention map in [0, 1] as an RGB heat map.

    The colour scale is fixed (0 blue, 1 red), so panels of different
    scales and images compare directly.

    Args:
        attention (np.ndarray): Map of shape (H, W) or (1, H, W).
        image (np.ndarray, optional): RGB image (H, W, 3) blended in faintly
            to show where things are. Defaults to None.
        image_weight (float): Weight of the grey image in the blend.
            Defaults to 0.25.
        colormap (int): OpenCV colour map. Defaults to ``COLORMAP_JET``.

    Returns:
        np.ndarray: uint8 RGB image of shape (H, W, 3).
    """
    attention = np.squeeze(attention)
    if attention.ndim != 2:
        raise ValueError('an attention map must have shape (H, W) or '
                         f'(1, H, W), got {attention.shape}')
    levels = np.clip(np.nan_to_num(attention) * 255.0, 0, 255)
    heat = cv2.applyColorMap(levels.astype(np.uint8), colormap)
    heat = cv2.cvtColor(heat, cv2.COLOR_BGR2RGB)
    if image is not None and image_weight > 0:
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        grey = cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB)
        heat = cv2.addWeighted(heat, 1.0 - image_weight, grey, image_weight,
                               0)
    return heat


def _format_scale(scale: float) -> str:
    return f'{float(scale):g}'


@VISUALIZERS.register_module()
class HMSALocalVisualizer(SegLocalVisualizer):
    """:class:`SegLocalVisualizer` that also draws every scale of HMSA.

    When a data sample has ``scale_outputs`` it writes one picture with
    labelled panels: image, ground truth (if any), fused prediction, then
    each scale's prediction and each scale's attention heat map, and a
    legend of the classes shown. Otherwise it behaves exactly like
    :class:`SegLocalVisualizer`.

    Args:
        name (str): Name of the instance. Defaults to 'visualizer'.
        panel_width (int, optional): Width (pixels) each panel is resized to;
            None keeps the image's width. Defaults to 1024.
        heatmap_image_weight (float): How much of the grey image shows
            through the attention heat maps. Defaults to 0.25.
        draw_class_labels (bool): Write class names on the segmentation
            panels. Defaults to False (the panels stay readable when small).
        **kwargs: Arguments of :class:`SegLocalVisualizer`
            (``vis_backends``, ``save_dir``, ``classes``, ``palette``,
            ``dataset_name``, ``alpha``).
    """

    def __init__(self,
                 name: str = 'visualizer',
                 panel_width: Optional[int] = 1024,
                 heatmap_image_weight: float = 0.25,
                 draw_class_labels: bool = False,
                 **kwargs) -> None:
        super().__init__(name=name, **kwargs)
        if panel_width is not None and panel_width < 32:
            raise ValueError(f'panel_width must be >= 32, got {panel_width}')
        self.panel_width = panel_width
        self.heatmap_image_weight = heatmap_image_weight
        self.draw_class_labels = draw_class_labels

    @master_only
    def add_datasample(self,
                       name: str,
                       image: np.ndarray,
                       data_sample: Optional[SegDataSample] = None,
                       draw_gt: bool = True,
                       draw_pred: bool = True,
                       show: bool = False,
                       wait_time: float = 0,
                       out_file: Optional[str] = None,
                       step: int = 0,
                       with_labels: Optional[bool] = True) -> None:
        """Draw a data sample and save it to the backends or ``out_file``.

        Arguments as in :meth:`SegLocalVisualizer.add_datasample`. Samples
        without ``scale_outputs`` are drawn by the parent class. With them,
        ``with_labels`` adds the class legend, and class names are written
        on the panels when ``draw_class_labels`` is set too.
        """
        if data_sample is None or 'scale_outputs' not in data_sample:
            return super().add_datasample(
                name,
                image,
                data_sample,
                draw_gt=draw_gt,
                draw_pred=draw_pred,
                show=show,
                wait_time=wait_time,
                out_file=out_file,
                step=step,
                with_labels=with_labels)
        drawn = self.draw_scales(
            image,
            data_sample,
            draw_gt=draw_gt,
            draw_pred=draw_pred,
            with_labels=bool(with_labels))
        self.set_image(drawn)
        if show:
            self.show(drawn, win_name=name, wait_time=wait_time)
        if out_file is not None:
            mmcv.imwrite(mmcv.rgb2bgr(drawn), out_file)
        else:
            self.add_image(name, drawn, step)

    def draw_scales(self,
                    image: np.ndarray,
                    data_sample: SegDataSample,
                    draw_gt: bool = True,
                    draw_pred: bool = True,
                    with_labels: bool = True) -> np.ndarray:
        """Compose the multi-scale picture of one data sample.

        Args:
            image (np.ndarray): RGB image (H, W, 3) at the original size.
            data_sample (SegDataSample): Prediction with ``scale_outputs``.
            draw_gt (bool): Include the ground truth panel when the sample
                has ``gt_sem_seg``. Defaults to True.
            draw_pred (bool): Include the fused prediction panel. Defaults
                to True.
            with_labels (bool): Add the class legend and allow class names
                on the segmentation panels (drawn if ``draw_class_labels``
                is set). Defaults to True.

        Returns:
            np.ndarray: uint8 RGB picture.
        """
        rows = self.panels(image, data_sample, draw_gt, draw_pred,
                           with_labels)
        legend = self.legend(data_sample, draw_gt, draw_pred) \
            if with_labels else []
        return self.compose(rows, legend)

    def legend(self,
               data_sample: SegDataSample,
               draw_gt: bool = True,
               draw_pred: bool = True) -> List[Tuple[str, Tuple[int, ...]]]:
        """The classes that the segmentation panels of a sample show.

        Args:
            data_sample (SegDataSample): Prediction with ``scale_outputs``.
            draw_gt (bool): Whether the ground truth is drawn. Defaults to
                True.
            draw_pred (bool): Whether the fused prediction is drawn.
                Defaults to True.

        Returns:
            list[tuple[str, tuple[int]]]: ``(name, RGB colour)`` from
            ``dataset_meta``, in class order; ids outside the classes (the
            ignore index) are left out.
        """
        classes = self.dataset_meta['classes']
        palette = self.dataset_meta['palette']
        maps = [out.pred_sem_seg for out in
                data_sample.scale_outputs.values()]
        if draw_gt and 'gt_sem_seg' in data_sample:
            maps.append(data_sample.gt_sem_seg)
        if draw_pred and 'pred_sem_seg' in data_sample:
            maps.append(data_sample.pred_sem_seg)
        present = set()
        for sem_seg in maps:
            present.update(int(i) for i in np.unique(_to_numpy(sem_seg.data)))
        return [(classes[i], tuple(int(c) for c in palette[i]))
                for i in sorted(present) if 0 <= i < len(classes)]

    def panels(self,
               image: np.ndarray,
               data_sample: SegDataSample,
               draw_gt: bool = True,
               draw_pred: bool = True,
               with_labels: bool = True) -> List[List[Panel]]:
        """The labelled panels of one data sample, row by row.

        Args:
            image (np.ndarray): RGB image (H, W, 3) at the original size.
            data_sample (SegDataSample): Prediction with ``scale_outputs``.
            draw_gt (bool): Include the ground truth. Defaults to True.
            draw_pred (bool): Include the fused prediction. Defaults to True.
            with_labels (bool): Allow class names on the segmentation panels
                (drawn if ``draw_class_labels`` is set). Defaults to True.

        Returns:
            list[list[Panel]]: Rows of labelled pictures.
        """
        classes = self.dataset_meta.get('classes')
        palette = self.dataset_meta.get('palette')
        if classes is None or palette is None:
            raise ValueError('the visualizer needs dataset_meta with classes '
                             'and palette to draw segmentations')
        scale_outputs: Dict[float, PixelData] = data_sample.scale_outputs
        scales = sorted(scale_outputs, key=float)
        metainfo = data_sample.metainfo
        fusion = metainfo.get('hmsa_fusion', 'fused')
        scale_text = ', '.join(_format_scale(s) for s in
                               metainfo.get('hmsa_scales', scales))

        def seg(sem_seg: PixelData) -> np.ndarray:
            return self._draw_sem_seg(
                image, sem_seg, classes, palette, with_labels
                and self.draw_class_labels).copy()

        first: List[Panel] = [Panel('image', image)]
        if draw_gt and 'gt_sem_seg' in data_sample:
            first.append(Panel('ground truth', seg(data_sample.gt_sem_seg)))
        if draw_pred and 'pred_sem_seg' in data_sample:
            first.append(
                Panel(f'fused: {fusion} over {scale_text}',
                      seg(data_sample.pred_sem_seg)))
        rows = [first]
        predictions = [
            Panel(f'scale {_format_scale(s)} prediction',
                  seg(scale_outputs[s].pred_sem_seg)) for s in scales
        ]
        rows.append(predictions)
        attentions: List[Panel] = []
        highest = max(float(s) for s in scales)
        for s in scales:
            out = scale_outputs[s]
            if 'attention' not in out:
                continue
            attention = _to_numpy(out.attention)
            caption = f'scale {_format_scale(s)} attention'
            if float(s) == highest and len(scales) > 1 \
                    and fusion != 'explicit':
                caption += ' (unused)'
            else:
                caption += (f', {np.nanmin(attention):.2f} to '
                            f'{np.nanmax(attention):.2f}')
            attentions.append(
                Panel(
                    caption,
                    attention_heatmap(attention, image,
                                      self.heatmap_image_weight),
                    heatmap=True))
        if attentions:
            rows.append(attentions)
        return rows

    def compose(
        self,
        rows: Sequence[Sequence[Panel]],
        legend: Sequence[Tuple[str, Sequence[int]]] = ()
    ) -> np.ndarray:
        """Lay labelled panels out on a grid, one caption bar per panel.

        All panels are resized to the first panel's size (scaled to
        ``panel_width``); short rows leave white cells. Rows of attention
        maps get a 0..1 colour scale at the right edge and the picture a
        line explaining what attention means. The legend goes below all
        that: a colour swatch and a name per class, in lines as wide as the
        picture.

        Args:
            rows (Sequence[Sequence[Panel]]): Rows of labelled pictures.
            legend (Sequence[tuple[str, Sequence[int]]]): ``(name, RGB
                colour)`` of each class to list (:meth:`legend`). Defaults
                to none.

        Returns:
            np.ndarray: uint8 RGB picture.
        """
        if not rows or not rows[0]:
            raise ValueError('nothing to draw')
        h, w = rows[0][0][1].shape[:2]
        if self.panel_width is not None and w != self.panel_width:
            h = max(1, int(round(h * self.panel_width / w)))
            w = self.panel_width
        bar = max(18, int(round(w * 0.045)))
        gap = max(2, bar // 6)
        cols = max(len(r) for r in rows)
        with_scale = [any(p.heatmap for p in row) for row in rows]
        ramp_w = max(8, bar // 2)
        legend_w = (gap + ramp_w + bar) if any(with_scale) else 0
        footer = bar + 2 * gap if any(with_scale) else 0
        grid_h = len(rows) * (h + bar) + (len(rows) - 1) * gap + footer
        out_w = cols * w + (cols - 1) * gap + legend_w
        places, legend_h = _legend_layout([name for name, _ in legend],
                                          out_w, bar)
        out_h = grid_h + legend_h
        canvas = np.full((out_h, out_w, 3), 255, dtype=np.uint8)
        for (name, colour), (x, y) in zip(legend, places):
            _put_legend_entry(canvas, name, colour, x, grid_h + y, bar)
        if footer:
            self._put_caption(canvas, ATTENTION_NOTE, 0, grid_h - footer,
                              cols * w, footer, colour=(0, 0, 0))
        for r, row in enumerate(rows):
            top = r * (h + bar + gap)
            for c, (caption, panel, _) in enumerate(row):
                left = c * (w + gap)
                canvas[top:top + bar, left:left + w] = 0
                self._put_caption(canvas, caption, left, top, w, bar)
                if panel.shape[:2] != (h, w):
                    panel = cv2.resize(
                        panel, (w, h), interpolation=cv2.INTER_NEAREST)
                canvas[top + bar:top + bar + h, left:left + w] = panel
            if with_scale[r]:
                self._put_colour_scale(canvas, cols * (w + gap),
                                       top + bar, ramp_w, h, bar)
        return canvas

    @staticmethod
    def _put_caption(canvas: np.ndarray,
                     text: str,
                     left: int,
                     top: int,
                     width: int,
                     bar: int,
                     colour: Sequence[int] = (255, 255, 255)) -> None:
        font = cv2.FONT_HERSHEY_SIMPLEX
        thickness = 1 if bar < 40 else 2
        scale = bar / 32.0
        (tw, th), _ = cv2.getTextSize(text, font, scale, thickness)
        if tw > width - 8:
            scale *= (width - 8) / tw
            (tw, th), _ = cv2.getTextSize(text, font, scale, thickness)
        cv2.putText(canvas, text, (left + 4, top + (bar + th) // 2), font,
                    scale, tuple(colour), thickness, cv2.LINE_AA)

    @staticmethod
    def _put_colour_scale(canvas: np.ndarray, left: int, top: int,
                          ramp_w: int, h: int, bar: int) -> None:
        """A vertical colour ramp from 1 (top) to 0 (bottom), labelled."""
        ramp = np.linspace(255, 0, h).astype(np.uint8)[:, None]
        ramp = cv2.applyColorMap(
            np.repeat(ramp, ramp_w, axis=1), cv2.COLORMAP_JET)
        canvas[top:top + h, left:left + ramp_w] = cv2.cvtColor(
            ramp, cv2.COLOR_BGR2RGB)
        font = cv2.FONT_HERSHEY_SIMPLEX
        scale = bar / 48.0
        (_, th), _ = cv2.getTextSize('1', font, scale, 1)
        for text, y in (('1', top + th + 1), ('0', top + h - 2)):
            cv2.putText(canvas, text, (left + ramp_w + 3, y), font, scale,
                        (0, 0, 0), 1, cv2.LINE_AA)


def _legend_sizes(bar: int) -> Tuple[float, int, int, int]:
    """Font scale and thickness of the names, swatch side and spacing of a
    legend whose lines are ``bar`` pixels high."""
    return bar / 40.0, 1 if bar < 40 else 2, max(6, bar * 2 // 3), max(
        2, bar // 6)


def _legend_layout(names: Sequence[str], width: int,
                   bar: int) -> Tuple[List[Tuple[int, int]], int]:
    """Where each legend entry goes, wrapping lines at ``width``.

    Returns:
        tuple: The (left, top) of each entry's swatch relative to the
        legend's top left corner, and the legend's height (0 without
        entries).
    """
    if not names:
        return [], 0
    scale, thickness, swatch, pad = _legend_sizes(bar)
    places, x, y = [], pad, pad
    for name in names:
        (text_w, _), _ = cv2.getTextSize(name, cv2.FONT_HERSHEY_SIMPLEX,
                                         scale, thickness)
        entry_w = swatch + pad + text_w + 2 * pad
        if x > pad and x + entry_w > width:
            x, y = pad, y + bar
        places.append((x, y + (bar - swatch) // 2))
        x += entry_w
    return places, y + bar + pad


def _put_legend_entry(canvas: np.ndarray, name: str, colour: Sequence[int],
                      left: int, top: int, bar: int) -> None:
    """A filled swatch of ``colour`` with ``name`` to its right."""
    scale, thickness, swatch, pad = _legend_sizes(bar)
    canvas[top:top + swatch, left:left + swatch] = colour
    (_, text_h), _ = cv2.getTextSize(name, cv2.FONT_HERSHEY_SIMPLEX, scale,
                                     thickness)
    cv2.putText(canvas, name,
                (left + swatch + pad, top + (swatch + text_h) // 2),
                cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness,
                cv2.LINE_AA)
