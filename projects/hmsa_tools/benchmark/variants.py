"""What the benchmark runs: its settings, models, inputs and variants.

A variant is a small named function that takes the prepared
:class:`Bench` and returns a callable that runs the variant once; the
functions register themselves in :data:`VARIANTS` with
:func:`register_variant`, together with the text the report prints and
what is measured of them (time, peak memory or both).
"""
import copy
import os.path as osp
from dataclasses import asdict, dataclass
from functools import partial
from typing import Callable, Dict, List, NamedTuple, Tuple

import torch
import torch.nn.functional as F

from projects.hmsa.models.fusion import scaled_size

#: The attention branch types whose single pass the benchmark times.
BRANCH_TYPES = ('bottleneck', 'separable', 'paper')


@dataclass
class BenchSettings:
    """Everything a benchmark run depends on besides the machine.

    Args:
        trunk (str): A model of
            :data:`~projects.hmsa_tools.stock.STOCK_MODELS`:
            ``'mnv2'``, ``'r50'`` (MMSeg's DeepLabV3+ configs) or ``'hr48'``
            (its HRNetV2-W48 OCRNet).
        attention (str): Attention branch type of the HMSA model.
        img_size (tuple[int, int]): Inference image size (H, W).
        crop_size (tuple[int, int]): Training crop size (H, W).
        batch_size (int): Training batch size.
        scales (tuple[float]): Inference scales, sorted, holding 1.0.
        lo_scale (float): Lower training scale.
        frame_size (tuple[int, int], optional): Frame of the slide-inference
            memory comparison; None leaves it out. Slide windows are squares
            of the frame's height, the stride three quarters of a window
            (1024x1024 and 768 for a 1024x2048 frame, as in
            ``configs/hmsa_mnv2.py``).
        device (str): Torch device.
        threads (int, optional): Torch CPU threads (None: torch's choice).
    """

    trunk: str = 'mnv2'
    attention: str = 'bottleneck'
    img_size: Tuple[int, int] = (256, 512)
    crop_size: Tuple[int, int] = (256, 256)
    batch_size: int = 2
    scales: Tuple[float, ...] = (0.5, 1.0, 2.0)
    lo_scale: float = 0.5
    frame_size: Tuple[int, int] = None
    device: str = 'cpu'
    threads: int = None

    def to_dict(self) -> dict:
        """The settings as JSON-ready data (:meth:`from_dict` reads it)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> 'BenchSettings':
        """Settings from :meth:`to_dict`'s output."""
        data = dict(data)
        for key in ('img_size', 'crop_size', 'scales', 'frame_size'):
            if data.get(key) is not None:
                data[key] = tuple(data[key])
        return cls(**data)

    @property
    def slide_window(self) -> Tuple[Tuple[int, int], Tuple[int, int]]:
        """(crop_size, stride) of the slide inference of the frame."""
        side = self.frame_size[0]
        return (side, side), (side * 3 // 4, side * 3 // 4)


def model_configs(settings: BenchSettings) -> Dict[str, dict]:
    """Configs of every model the variants use.

    All come from MMSeg's own Cityscapes config of the trunk (BN instead of
    SyncBN, no pretrained weights); HMSA is its version by
    :func:`~projects.hmsa_tools.model_families.to_hmsa` (DeepLabV3+:
    ``HMSASepASPPHead``; OCRNet: ``HMSACascadeEncoderDecoder`` with the
    branch on the OCR head's classifier input).

    Returns:
        dict[str, dict]: ``stock``, ``hmsa``, ``attention_only``,
        ``attention_pairs`` (attention-only on two pairs), ``explicit``
        (explicit attention over 0.5, 1, 2, all weights trained),
        ``hmsa_<type>`` for each of :data:`BRANCH_TYPES`, and, with a
        frame, ``stock_slide`` and ``hmsa_slide``.
    """
    from ..model_families import to_hmsa
    from ..stock import STOCK_DEEPLABV3PLUS, stock_model_cfg
    model = stock_model_cfg(settings.trunk)
    model['data_preprocessor']['size'] = tuple(settings.crop_size)
    model['test_cfg'] = dict(mode='whole')
    stock = copy.deepcopy(model)

    def with_branch(kind: str) -> dict:
        return to_hmsa(
            model,
            dict(type=kind),
            declared=settings.trunk in STOCK_DEEPLABV3PLUS,
            train_cfg=dict(lo_scale=settings.lo_scale, attention_only=False),
            test_cfg=dict(
                mode='whole', scales=list(settings.scales),
                fusion='attention'))

    hmsa = with_branch(settings.attention)
    cfgs = dict(stock=stock, hmsa=hmsa)
    cfgs['attention_only'] = copy.deepcopy(hmsa)
    cfgs['attention_only']['train_cfg']['attention_only'] = True
    cfgs['attention_pairs'] = copy.deepcopy(cfgs['attention_only'])
    cfgs['attention_pairs']['train_cfg'].update(
        lo_scale=None, scale_pairs=[[settings.lo_scale, 1.0], [1.0, 2.0]])
    cfgs['explicit'] = copy.deepcopy(hmsa)
    cfgs['explicit']['train_cfg'] = dict(
        fusion='explicit', scale_pairs=[[0.5, 1.0, 2.0]])
    for kind in BRANCH_TYPES:
        cfgs[f'hmsa_{kind}'] = with_branch(kind)
    if settings.frame_size is not None:
        crop, stride = settings.slide_window
        slide = dict(mode='slide', crop_size=crop, stride=stride)
        cfgs['stock_slide'] = dict(copy.deepcopy(stock), test_cfg=slide)
        cfgs['hmsa_slide'] = copy.deepcopy(hmsa)
        cfgs['hmsa_slide']['test_cfg'].update(slide)
    return cfgs


def image_meta(shape) -> dict:
    """The metainfo MMSeg's pipeline gives an unpadded image of ``shape``."""
    h, w = shape
    return dict(
        ori_shape=(h, w),
        img_shape=(h, w),
        pad_shape=(h, w),
        padding_size=[0, 0, 0, 0])


class Bench:
    """The models and inputs of a benchmark run, each built on first use.

    Args:
        settings (BenchSettings): What to run.
        workdir (str): Folder for the benchmark image file.
    """

    def __init__(self, settings: BenchSettings, workdir: str) -> None:
        self.settings = settings
        self.device = torch.device(settings.device)
        self.workdir = workdir
        self.cfgs = model_configs(settings)
        self._models: Dict[str, torch.nn.Module] = {}
        gen = torch.Generator().manual_seed(0)
        self.image = torch.randint(
            0, 256, (3, *settings.img_size), generator=gen, dtype=torch.uint8)
        self.train_images = [
            torch.randint(0, 256, (3, *settings.crop_size), generator=gen,
                          dtype=torch.uint8)
            for _ in range(settings.batch_size)
        ]
        self.train_labels = [
            torch.randint(0, 19, (1, *settings.crop_size), generator=gen)
            for _ in range(settings.batch_size)
        ]

    def _build(self, key: str) -> torch.nn.Module:
        from mmengine.config import ConfigDict
        from mmengine.registry import DefaultScope
        from mmseg.registry import MODELS
        with DefaultScope.overwrite_default_scope('mmseg'):
            model = MODELS.build(ConfigDict(copy.deepcopy(self.cfgs[key])))
        return model.to(self.device)

    def model(self, name: str) -> torch.nn.Module:
        """A model in eval mode (``<key>_eval``), the stock model with the
        HMSA model's weights (``stock_eval``), MMSeg's ``tta`` over it, or
        a model with an SGD optimiser in train mode (``<key>_train``)."""
        if name not in self._models:
            self._models[name] = self._make(name)
        return self._models[name]

    def _make(self, name: str) -> torch.nn.Module:
        if name == 'stock_eval':
            model = self._build('stock').eval()
            hmsa = self.model('hmsa_eval')
            state = {
                k: v
                for k, v in hmsa.state_dict().items()
                if not k.startswith(hmsa.attention_prefix)
            }
            model.load_state_dict(state, strict=True)
            return model
        if name == 'tta':
            from mmseg.models import SegTTAModel
            return SegTTAModel(module=self.model('stock_eval')).eval()
        key, _, mode = name.rpartition('_')
        if key not in self.cfgs or mode not in ('eval', 'train'):
            raise KeyError(name)
        model = self._build(key)
        if mode == 'eval':
            return model.eval()
        from mmengine.optim import OptimWrapper
        torch.manual_seed(0)
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        model.optim_wrapper = OptimWrapper(
            torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=5e-4))
        return model

    def sample(self, shape):
        """A ``SegDataSample`` with :func:`image_meta` of ``shape``."""
        from mmseg.structures import SegDataSample
        return SegDataSample(metainfo=image_meta(tuple(shape)))

    def train_batch(self) -> dict:
        """The training batch as a data loader gives it."""
        from mmengine.structures import PixelData
        samples = []
        for label in self.train_labels:
            sample = self.sample(label.shape[-2:])
            sample.gt_sem_seg = PixelData(data=label)
            samples.append(sample)
        return dict(inputs=list(self.train_images), data_samples=samples)

    def test_batch(self) -> dict:
        """The inference image as a data loader gives it."""
        return dict(
            inputs=[self.image],
            data_samples=[self.sample(self.image.shape[-2:])])

    @property
    def image_file(self) -> str:
        """The benchmark image written as a PNG (for the file-based runs)."""
        path = osp.join(self.workdir, 'bench_leftImg8bit.png')
        if not osp.exists(path):
            import mmcv
            mmcv.imwrite(self.image.permute(1, 2, 0).numpy(), path)
        return path


class Variant(NamedTuple):
    """A registered variant.

    Attributes:
        name (str): Its key in reports and JSON.
        text (str): What the report's table calls it.
        timed (bool): Whether the interleaved timing runs it.
        memory (bool): Whether its peak memory is measured.
        warm_up (bool): Whether the memory probe runs it once first.
        needs_frame (bool): Whether it runs only with a frame size.
        build (callable): ``build(bench)`` returns a callable that runs the
            variant once (without autograd unless it trains).
    """

    name: str
    text: str
    timed: bool
    memory: bool
    warm_up: bool
    needs_frame: bool
    build: Callable[[Bench], Callable[[], None]]


#: Every variant by name, in the order the report prints them.
VARIANTS: Dict[str, Variant] = {}


def register_variant(text: str,
                     timed: bool = True,
                     memory: bool = False,
                     warm_up: bool = True,
                     needs_frame: bool = False,
                     grad: bool = False,
                     name: str = None) -> Callable:
    """Register ``build(bench)`` as a variant named ``name`` (default: the
    function's name); its runs go without autograd unless ``grad``."""

    def wrap(build: Callable[[Bench], Callable[[], None]]) -> Callable:
        key = name or build.__name__

        def built(bench: Bench) -> Callable[[], None]:
            run = build(bench)
            return run if grad else torch.no_grad()(run)

        VARIANTS[key] = Variant(key, text, timed, memory, warm_up,
                                needs_frame, built)
        return build

    return wrap


def variant_names(settings: BenchSettings,
                  timed: bool = None,
                  memory: bool = None) -> List[str]:
    """The variants a run with ``settings`` includes, filtered by what is
    measured of them (None: either)."""
    return [
        v.name for v in VARIANTS.values()
        if (settings.frame_size is not None or not v.needs_frame) and (
            timed is None or v.timed == timed) and (
                memory is None or v.memory == memory)
    ]


# ----------------------------------------------------------------------
# inference
# ----------------------------------------------------------------------
@register_variant('HMSA inference, attention fusion')
def hmsa_infer(bench: Bench) -> Callable[[], None]:
    """HMSA's ``test_step`` on the inference image (all test scales)."""
    model = bench.model('hmsa_eval')
    return lambda: model.test_step(bench.test_batch())


@register_variant('stock model, one pass per scale')
def stock_at_scales(bench: Bench) -> Callable[[], None]:
    """The stock model's ``predict`` once per test scale, same weights."""
    model = bench.model('stock_eval')

    def run() -> None:
        x = model.data_preprocessor(bench.test_batch(), False)['inputs']
        for scale in bench.settings.scales:
            size = scaled_size(x.shape[-2:], scale)
            x_s = x if scale == 1.0 else F.interpolate(
                x, size=size, mode='bilinear', align_corners=False)
            sample = bench.sample(bench.image.shape[-2:])
            sample.set_metainfo(dict(img_shape=size, pad_shape=size))
            model.predict(x_s, [sample])

    return run


def _from_file(bench: Bench, model: torch.nn.Module,
               transforms: List[dict]) -> Callable[[], None]:
    from mmcv.transforms import Compose
    from mmengine.dataset import pseudo_collate
    pipeline = Compose([dict(type='LoadImageFromFile'), *transforms])
    path = bench.image_file
    return lambda: model.test_step(
        pseudo_collate([pipeline(dict(img_path=path))]))


@register_variant('HMSA from file (pipeline + inference)')
def hmsa_from_file(bench: Bench) -> Callable[[], None]:
    """HMSA from the image file: loading, packing and ``test_step``."""
    return _from_file(bench, bench.model('hmsa_eval'),
                      [dict(type='PackSegInputs')])


@register_variant('SegTTAModel from file (TTA pipeline, mean)')
def tta_from_file(bench: Bench) -> Callable[[], None]:
    """MMSeg's ``SegTTAModel`` over ``TestTimeAug`` at the test scales."""
    resizes = [
        dict(type='Resize', scale_factor=s, keep_ratio=True)
        for s in bench.settings.scales
    ]
    flip = dict(type='RandomFlip', prob=0., direction='horizontal')
    tta = dict(
        type='TestTimeAug',
        transforms=[resizes, [flip], [dict(type='PackSegInputs')]])
    return _from_file(bench, bench.model('tta'), [tta])


# ----------------------------------------------------------------------
# one network pass per attention branch type
# ----------------------------------------------------------------------
def _one_pass(bench: Bench, key: str) -> Callable[[], None]:
    model = bench.model(key)
    x = model.data_preprocessor(bench.test_batch(), False)['inputs']
    if key == 'stock_eval':
        return lambda: model._forward(x)  # backbone and decode heads
    return lambda: model.forward_scale(x)


@register_variant('stock model, one pass at 1.0')
def stock_pass(bench: Bench) -> Callable[[], None]:
    """One pass of the stock network (backbone and decode head)."""
    return _one_pass(bench, 'stock_eval')


for _kind in BRANCH_TYPES:
    register_variant(
        f'one pass with the {_kind} attention branch',
        name=f'{_kind}_pass')(partial(_one_pass, key=f'hmsa_{_kind}_eval'))


# ----------------------------------------------------------------------
# training steps
# ----------------------------------------------------------------------
def _train_step(bench: Bench, key: str) -> Callable[[], None]:
    model = bench.model(f'{key}_train')
    return lambda: model.train_step(bench.train_batch(), model.optim_wrapper)


for _key, _text in (
    ('stock', 'stock training step (1.0 scale)'),
    ('hmsa', 'HMSA training step (two scales)'),
    ('attention_only', 'HMSA attention-only training step'),
    ('attention_pairs', 'attention-only step, pairs (0.5,1), (1,2)'),
    ('explicit', 'explicit attention step (0.5, 1, 2), all weights'),
):
    register_variant(
        _text, memory=True, grad=True,
        name=f'{_key}_step')(partial(_train_step, key=_key))


# ----------------------------------------------------------------------
# slide inference of a whole frame (peak memory)
# ----------------------------------------------------------------------
def _frame(bench: Bench) -> torch.Tensor:
    """The frame, as the data preprocessor gives it (normalised floats)."""
    gen = torch.Generator().manual_seed(1)
    return torch.randn(1, 3, *bench.settings.frame_size,
                       generator=gen).to(bench.device)


@register_variant('HMSA slide inference of the frame at its scales',
                  timed=False, memory=True, warm_up=False, needs_frame=True)
def hmsa_slide(bench: Bench) -> Callable[[], None]:
    """HMSA slide inference of the frame at the test scales, fused."""
    model, frame = bench.model('hmsa_slide_eval'), _frame(bench)
    metas = [image_meta(frame.shape[-2:])]
    return lambda: model.inference(frame, metas)


@register_variant('stock slide inference of the frame at scale 2',
                  timed=False, memory=True, warm_up=False, needs_frame=True)
def stock_slide_x2(bench: Bench) -> Callable[[], None]:
    """The stock model's slide inference of the frame resized by 2."""
    model, frame = bench.model('stock_slide_eval'), _frame(bench)
    size = scaled_size(frame.shape[-2:], 2.0)

    def run() -> None:
        x = F.interpolate(frame, size=size, mode='bilinear',
                          align_corners=False)
        model.inference(x, [image_meta(size)])

    return run
