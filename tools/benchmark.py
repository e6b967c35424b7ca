#!/usr/bin/env python
"""Speed and memory of HMSA against its baselines, side by side in one run.

Measured on this machine in one invocation (random weights and images; the
numbers do not depend on what the weights are):

(a) HMSA inference at the test scales (attention fusion) vs the stock
    single-scale DeepLabV3+ (``EncoderDecoder`` +
    ``DepthwiseSeparableASPPHead``, the same weights) run once at each of
    those scales. Target <= 1.10x: the attention branch and the fusion
    should cost little on top of the passes themselves.
(b) HMSA inference vs MMSeg's own multi-scale test: ``SegTTAModel`` over its
    ``TestTimeAug`` pipeline with the same scales (mean of softmax). Both
    paths are timed from the image file on disk to the final prediction,
    pipelines included. Target <= 1.0x.
(c) One HMSA training step (two scales: 1.0 and ``--lo-scale``) vs one stock
    single-scale training step on the same batch: time and peak memory.
    Target <= 1.35x each.
(d) One attention-only HMSA training step vs one full HMSA step (time).
    Target <= 0.5x.

Timing: every variant runs ``--warmup`` times and then ``--repeats`` times,
interleaved round by round (the order rotates each round) so that a slow
moment of a shared machine spreads over all variants; the median is
reported. On a GPU, CUDA events time each call.

Peak memory of a training step: on a GPU, ``torch.cuda.max_memory_allocated``
above what was allocated before the step. On a CPU, each variant runs in a
fresh subprocess that takes one warm-up step, resets the kernel's peak-RSS
counter (``/proc/self/clear_refs``) and reports the peak resident memory
(``VmHWM``) during one step above the resident memory just before it; glibc
is told to return large freed blocks to the system at once
(``MALLOC_MMAP_THRESHOLD_``), so the resident size follows what tensors hold.
This counts activations, gradients and temporaries, not the weights and
optimiser state that exist before the step (nearly equal for both models).

Example::

    python tools/benchmark.py                       # defaults, a few minutes
    python tools/benchmark.py --trunk r50 --attention paper --repeats 3
    python tools/benchmark.py --quick               # seconds, smoke test
"""
import argparse
import copy
import ctypes
import gc
import json
import os
import os.path as osp
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional, Sequence

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

from projects.hmsa.stock import STOCK_DEEPLABV3PLUS  # noqa: E402

INFERENCE_VARIANTS = ('hmsa_infer', 'stock_at_scales', 'hmsa_from_file',
                      'tta_from_file')
TRAIN_VARIANTS = ('stock_step', 'hmsa_step', 'attention_only_step',
                  'attention_pairs_step', 'explicit_step')
VARIANT_TEXT = {
    'hmsa_infer': 'HMSA inference, attention fusion',
    'stock_at_scales': 'stock model, one pass per scale',
    'hmsa_from_file': 'HMSA from file (pipeline + inference)',
    'tta_from_file': 'SegTTAModel from file (TTA pipeline, mean)',
    'stock_step': 'stock training step (1.0 scale)',
    'hmsa_step': 'HMSA training step (two scales)',
    'attention_only_step': 'HMSA attention-only training step',
    'attention_pairs_step': 'attention-only step, pairs (0.5,1), (1,2)',
    'explicit_step': 'explicit attention step (0.5, 1, 2), all weights',
}
#: (name, numerator, denominator, quantity, target)
RATIOS = (
    ('(a) HMSA vs stock model at the same scales', 'hmsa_infer',
     'stock_at_scales', 'time', 1.10),
    ('(b) HMSA vs MMSeg TTA (same scales, mean)', 'hmsa_from_file',
     'tta_from_file', 'time', 1.0),
    ('(c) HMSA step vs stock step', 'hmsa_step', 'stock_step', 'time', 1.35),
    ('(c) HMSA step vs stock step', 'hmsa_step', 'stock_step', 'memory',
     1.35),
    ('(d) attention-only step vs HMSA step', 'attention_only_step',
     'hmsa_step', 'time', 0.5),
    ('(d) attention-only step vs HMSA step', 'attention_only_step',
     'hmsa_step', 'memory', None),
    ('(e) attention-only, two pairs vs HMSA step', 'attention_pairs_step',
     'hmsa_step', 'time', None),
    ('(f) explicit attention step vs HMSA step', 'explicit_step',
     'hmsa_step', 'time', None),
    ('(f) explicit attention step vs HMSA step', 'explicit_step',
     'hmsa_step', 'memory', None),
)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse the command line.

    Args:
        argv (Sequence[str], optional): Arguments; ``sys.argv[1:]`` if None.

    Returns:
        argparse.Namespace: The parsed arguments (``--quick`` applied).
    """
    parser = argparse.ArgumentParser(
        description='Benchmark HMSA against the stock model and MMSeg TTA '
        '(speed and memory, one run, one machine).')
    parser.add_argument(
        '--trunk', choices=sorted(STOCK_DEEPLABV3PLUS), default='mnv2')
    parser.add_argument(
        '--attention',
        choices=['bottleneck', 'separable', 'paper'],
        default='bottleneck',
        help='attention branch type (default: bottleneck, the heads\' '
        'default)')
    parser.add_argument(
        '--img-size',
        type=int,
        nargs=2,
        default=[256, 512],
        metavar=('H', 'W'),
        help='inference image size (default: 256 512)')
    parser.add_argument(
        '--crop-size',
        type=int,
        nargs=2,
        default=[256, 256],
        metavar=('H', 'W'),
        help='training crop size (default: 256 256)')
    parser.add_argument(
        '--batch-size',
        type=int,
        default=2,
        help='training batch size, >= 2 (default: 2)')
    parser.add_argument(
        '--scales',
        type=float,
        nargs='+',
        default=[0.5, 1.0, 2.0],
        help='inference scales, must include 1 (default: 0.5 1 2)')
    parser.add_argument(
        '--lo-scale',
        type=float,
        default=0.5,
        help='lower training scale (default: 0.5)')
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument(
        '--device',
        default=None,
        help='torch device (default: cuda if available, else cpu)')
    parser.add_argument(
        '--threads',
        type=int,
        default=None,
        help='torch CPU threads (default: torch\'s choice)')
    parser.add_argument(
        '--no-memory',
        action='store_true',
        help='skip the memory measurements')
    parser.add_argument(
        '--out',
        default='work_dirs/benchmark/benchmark.json',
        help='JSON output (default: work_dirs/benchmark/benchmark.json)')
    parser.add_argument(
        '--quick',
        action='store_true',
        help='tiny sizes and one repeat: a smoke test, not a measurement')
    parser.add_argument(
        '--memory-probe', default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.img_size = [64, 128]
        args.crop_size = [64, 64]
        args.batch_size = 2
        args.warmup = 0
        args.repeats = 1
    if args.repeats < 1 or args.warmup < 0:
        parser.error('--repeats must be >= 1 and --warmup >= 0')
    if args.batch_size < 2:
        parser.error('--batch-size must be >= 2: the BatchNorm after the '
                     'ASPP image pooling sees one value per channel and '
                     'image')
    if min(args.img_size + args.crop_size) < 32:
        parser.error('--img-size and --crop-size must be >= 32')
    if not 0 < args.lo_scale < 1:
        parser.error('--lo-scale must lie in (0, 1)')
    try:
        from projects.hmsa.models import check_scales
        args.scales = list(check_scales(args.scales))
    except ValueError as err:
        parser.error(f'--scales: {err}')
    return args


# ----------------------------------------------------------------------
# models and data
# ----------------------------------------------------------------------
def model_configs(args: argparse.Namespace) -> Dict[str, dict]:
    """Configs of the stock, HMSA and attention-only models.

    All come from MMSeg's own DeepLabV3+ Cityscapes config of the chosen
    trunk (BN instead of SyncBN, no pretrained weights); HMSA swaps in
    ``HMSAEncoderDecoder`` and ``HMSASepASPPHead``.

    Args:
        args (argparse.Namespace): Parsed arguments.

    Returns:
        dict[str, dict]: ``stock``, ``hmsa``, ``attention_only``,
        ``attention_pairs`` (attention-only on two pairs) and ``explicit``
        (explicit attention over 0.5, 1, 2, all weights trained).
    """
    from projects.hmsa.stock import stock_model_cfg
    model = stock_model_cfg(args.trunk)
    model['data_preprocessor']['size'] = tuple(args.crop_size)
    model['test_cfg'] = dict(mode='whole')
    stock = copy.deepcopy(model)
    hmsa = copy.deepcopy(model)
    hmsa['type'] = 'HMSAEncoderDecoder'
    hmsa['decode_head']['type'] = 'HMSASepASPPHead'
    hmsa['decode_head']['attention_cfg'] = dict(type=args.attention)
    hmsa['train_cfg'] = dict(lo_scale=args.lo_scale, attention_only=False)
    hmsa['test_cfg'] = dict(
        mode='whole', scales=list(args.scales), fusion='attention')
    attention_only = copy.deepcopy(hmsa)
    attention_only['train_cfg']['attention_only'] = True
    attention_pairs = copy.deepcopy(attention_only)
    attention_pairs['train_cfg']['scale_pairs'] = [[args.lo_scale, 1.0],
                                                   [1.0, 2.0]]
    explicit = copy.deepcopy(hmsa)
    explicit['train_cfg'] = dict(
        fusion='explicit', explicit_scales=[0.5, 1.0, 2.0])
    return dict(
        stock=stock,
        hmsa=hmsa,
        attention_only=attention_only,
        attention_pairs=attention_pairs,
        explicit=explicit)


class Bench:
    """Builds the models and inputs once and runs one variant per call.

    Args:
        args (argparse.Namespace): Parsed arguments.
        device (torch.device): Where to run.
        workdir (str): Folder for the benchmark image file.
    """

    def __init__(self, args: argparse.Namespace, device, workdir: str):
        import torch
        self.args = args
        self.device = device
        self.workdir = workdir
        self.cfgs = model_configs(args)
        self._models: Dict[str, object] = {}
        gen = torch.Generator().manual_seed(0)
        h, w = args.img_size
        self.image = torch.randint(0, 256, (3, h, w), generator=gen,
                                   dtype=torch.uint8)
        ch, cw = args.crop_size
        self.train_images = [
            torch.randint(0, 256, (3, ch, cw), generator=gen,
                          dtype=torch.uint8) for _ in range(args.batch_size)
        ]
        self.train_labels = [
            torch.randint(0, 19, (1, ch, cw), generator=gen)
            for _ in range(args.batch_size)
        ]

    # -- building ------------------------------------------------------
    def _build(self, key: str):
        from mmengine.config import ConfigDict
        from mmseg.registry import MODELS
        cfg = ConfigDict(copy.deepcopy(self.cfgs[key]))
        return MODELS.build(cfg).to(self.device)

    def model(self, name: str):
        """The model a variant uses, built on first use."""
        import torch
        if name in self._models:
            return self._models[name]
        if name == 'hmsa_eval':
            model = self._build('hmsa').eval()
        elif name == 'stock_eval':
            # The stock model with exactly the HMSA model's weights.
            model = self._build('stock').eval()
            state = {
                k: v
                for k, v in self.model('hmsa_eval').state_dict().items()
                if not k.startswith('decode_head.attention.')
            }
            model.load_state_dict(state, strict=True)
        elif name == 'tta':
            from mmseg.models import SegTTAModel
            model = SegTTAModel(module=self.model('stock_eval')).eval()
        elif name.endswith('_train') and name[:-len('_train')] in self.cfgs:
            key = name[:-len('_train')]
            model = self._build(key)
            torch.manual_seed(0)
            model.train()
            from mmengine.optim import OptimWrapper
            params = [p for p in model.parameters() if p.requires_grad]
            model.optim_wrapper = OptimWrapper(
                torch.optim.SGD(
                    params, lr=0.01, momentum=0.9, weight_decay=5e-4))
        else:
            raise KeyError(name)
        self._models[name] = model
        return model

    # -- inputs --------------------------------------------------------
    def _sample(self, shape):
        from mmseg.structures import SegDataSample
        h, w = shape
        return SegDataSample(
            metainfo=dict(
                ori_shape=(h, w),
                img_shape=(h, w),
                pad_shape=(h, w),
                padding_size=[0, 0, 0, 0]))

    def _train_batch(self) -> dict:
        from mmengine.structures import PixelData
        samples = []
        for label in self.train_labels:
            sample = self._sample(label.shape[-2:])
            sample.gt_sem_seg = PixelData(data=label)
            samples.append(sample)
        return dict(inputs=list(self.train_images), data_samples=samples)

    @property
    def image_file(self) -> str:
        """The benchmark image written as a PNG (for the file-based runs)."""
        path = osp.join(self.workdir, 'bench_leftImg8bit.png')
        if not osp.exists(path):
            import mmcv
            mmcv.imwrite(self.image.permute(1, 2, 0).numpy(), path)
        return path

    # -- variants ------------------------------------------------------
    def variant(self, name: str) -> Callable[[], None]:
        """A function that runs variant ``name`` once."""
        import torch
        import torch.nn.functional as F
        from mmcv.transforms import Compose
        from mmengine.dataset import pseudo_collate

        if name == 'hmsa_infer':
            model = self.model('hmsa_eval')

            def run():
                data = dict(
                    inputs=[self.image],
                    data_samples=[self._sample(self.image.shape[-2:])])
                with torch.no_grad():
                    model.test_step(data)
            return run
        if name == 'stock_at_scales':
            model = self.model('stock_eval')
            scales = list(self.args.scales)

            def run():
                shape = tuple(self.image.shape[-2:])
                data = dict(inputs=[self.image],
                            data_samples=[self._sample(shape)])
                with torch.no_grad():
                    data = model.data_preprocessor(data, False)
                    for scale in scales:
                        x = data['inputs']
                        if scale != 1.0:
                            size = (max(1, round(shape[0] * scale)),
                                    max(1, round(shape[1] * scale)))
                            x = F.interpolate(
                                x, size=size, mode='bilinear',
                                align_corners=False)
                        sample = self._sample(shape)
                        sample.set_metainfo(
                            dict(img_shape=tuple(x.shape[-2:]),
                                 pad_shape=tuple(x.shape[-2:])))
                        model.predict(x, [sample])
            return run
        if name == 'hmsa_from_file':
            model = self.model('hmsa_eval')
            pipeline = Compose([
                dict(type='LoadImageFromFile'),
                dict(type='PackSegInputs')
            ])
            path = self.image_file

            def run():
                data = pseudo_collate([pipeline(dict(img_path=path))])
                with torch.no_grad():
                    model.test_step(data)
            return run
        if name == 'tta_from_file':
            model = self.model('tta')
            pipeline = Compose([
                dict(type='LoadImageFromFile'),
                dict(
                    type='TestTimeAug',
                    transforms=[
                        [
                            dict(type='Resize', scale_factor=s,
                                 keep_ratio=True) for s in self.args.scales
                        ],
                        [
                            dict(type='RandomFlip', prob=0.,
                                 direction='horizontal')
                        ],
                        [dict(type='PackSegInputs')],
                    ])
            ])
            path = self.image_file

            def run():
                data = pseudo_collate([pipeline(dict(img_path=path))])
                with torch.no_grad():
                    model.test_step(data)
            return run
        if name in TRAIN_VARIANTS:
            model = self.model(name[:-len('_step')] + '_train')

            def run():
                model.train_step(self._train_batch(), model.optim_wrapper)
            return run
        raise KeyError(name)


# ----------------------------------------------------------------------
# measuring
# ----------------------------------------------------------------------
def time_call(fn: Callable[[], None], device) -> float:
    """Seconds one call of ``fn`` takes (CUDA events on a GPU)."""
    import torch
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize(device)
        return start.elapsed_time(end) / 1000.0
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure_times(
        bench: Bench,
        names: Sequence[str],
        warmup: int,
        repeats: int,
        log: Callable[[str], None] = print) -> Dict[str, List[float]]:
    """Time every variant, interleaved round by round.

    Args:
        bench (Bench): The prepared benchmark.
        names (Sequence[str]): Variants to time.
        warmup (int): Untimed rounds first.
        repeats (int): Timed rounds.
        log (callable): Progress output.

    Returns:
        dict[str, list[float]]: Seconds per call of each variant.
    """
    fns = {name: bench.variant(name) for name in names}
    times: Dict[str, List[float]] = {name: [] for name in names}
    order = list(names)
    total = warmup + repeats
    for r in range(total):
        shift = r % len(order)
        for name in order[shift:] + order[:shift]:
            seconds = time_call(fns[name], bench.device)
            if r >= warmup:
                times[name].append(seconds)
        kind = 'warm-up' if r < warmup else 'timed'
        log(f'  round {r + 1}/{total} ({kind}) done')
    return times


def _proc_status(field: str) -> Optional[int]:
    """A memory field of /proc/self/status in bytes (None if missing)."""
    try:
        with open('/proc/self/status') as f:
            match = re.search(rf'^{field}:\s+(\d+) kB', f.read(), re.M)
    except OSError:
        return None
    return int(match.group(1)) * 1024 if match else None


def _reset_peak_rss() -> bool:
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


def _malloc_trim() -> None:
    try:
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except (OSError, AttributeError):
        pass


def probe_memory(bench: Bench, name: str) -> Dict[str, object]:
    """Peak memory of one call of a variant (run in a fresh process on CPU).

    Args:
        bench (Bench): The prepared benchmark.
        name (str): Variant.

    Returns:
        dict: ``peak_bytes`` (above the memory in use before the call),
        ``base_bytes`` and ``method``.
    """
    import torch
    fn = bench.variant(name)
    fn()  # warm-up: optimiser state, allocator, lazy initialisation
    gc.collect()
    if bench.device.type == 'cuda':
        torch.cuda.synchronize(bench.device)
        torch.cuda.reset_peak_memory_stats(bench.device)
        base = torch.cuda.memory_allocated(bench.device)
        fn()
        torch.cuda.synchronize(bench.device)
        peak = torch.cuda.max_memory_allocated(bench.device)
        return dict(peak_bytes=peak - base, base_bytes=base,
                    method='torch.cuda.max_memory_allocated')
    _malloc_trim()
    if _reset_peak_rss():
        base = _proc_status('VmRSS')
        fn()
        peak = _proc_status('VmHWM')
        method = 'VmHWM after clear_refs, fresh process'
    else:  # no clear_refs: the process-wide high-water mark
        import resource
        base = _proc_status('VmRSS') or 0
        fn()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        method = 'ru_maxrss, fresh process'
    return dict(peak_bytes=peak - base, base_bytes=base, method=method)


def memory_in_subprocess(name: str, argv: Sequence[str]) -> Dict[str, object]:
    """Run :func:`probe_memory` for ``name`` in a fresh Python process."""
    env = dict(os.environ)
    # Large blocks come from mmap and go back to the system when freed, so
    # the resident size follows the tensors alive.
    env['MALLOC_MMAP_THRESHOLD_'] = str(128 * 1024)
    env['MALLOC_TRIM_THRESHOLD_'] = str(128 * 1024)
    cmd = [sys.executable, osp.abspath(__file__), *argv,
           '--memory-probe', name]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env,
                          cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f'memory probe {name} failed:\n{proc.stderr}')
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith('{')][-1]
    return json.loads(line)


def machine_line(device) -> str:
    """One line naming the CPU, cores, torch and the device."""
    import torch
    cpu = platform.processor() or 'unknown CPU'
    try:
        with open('/proc/cpuinfo') as f:
            match = re.search(r'^model name\s*:\s*(.+)$', f.read(), re.M)
        if match:
            cpu = match.group(1).strip()
    except OSError:
        pass
    dev = 'CPU'
    if device.type == 'cuda':
        dev = torch.cuda.get_device_name(device)
    line = (f'machine: {cpu}, {os.cpu_count()} cores, torch '
            f'{torch.__version__} ({torch.get_num_threads()} threads), '
            f'device {dev}, python {platform.python_version()}')
    if hasattr(os, 'getloadavg'):
        line += f', load average {os.getloadavg()[0]:.1f} at start'
    return line


def busy_machine_note() -> Optional[str]:
    """A warning when other processes keep the CPUs busy, else None."""
    if not hasattr(os, 'getloadavg'):
        return None
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    if load < 0.5 * cores:
        return None
    return (f'note: load average {load:.1f} on {cores} cores: other '
            'processes compete for the CPU, single timings vary a lot (see '
            'min - max); ratios of interleaved medians are still '
            'comparable. --threads 1 avoids oversubscribing the cores; more '
            '--repeats narrow the spread.')


# ----------------------------------------------------------------------
# reporting
# ----------------------------------------------------------------------
def compute_ratios(times: Dict[str, float],
                   memory: Dict[str, float]) -> List[Dict[str, object]]:
    """The ratios (a)-(d) from median times and peak memory.

    Args:
        times (dict[str, float]): Median seconds per variant.
        memory (dict[str, float]): Peak bytes per training variant (may be
            empty when memory was not measured).

    Returns:
        list[dict]: ``name``, ``quantity``, ``numerator``, ``denominator``,
        ``ratio``, ``target``, ``met`` (None when no target or no value).
    """
    rows = []
    for name, num, den, quantity, target in RATIOS:
        source = times if quantity == 'time' else memory
        ratio = None
        if num in source and den in source and source[den]:
            ratio = source[num] / source[den]
        met = None if ratio is None or target is None else ratio <= target
        rows.append(
            dict(
                name=name,
                quantity=quantity,
                numerator=num,
                denominator=den,
                ratio=ratio,
                target=target,
                met=met))
    return rows


def format_report(result: Dict[str, object]) -> str:
    """The printed tables: absolute numbers, then the ratios."""
    times = result['median_seconds']
    samples = result['seconds_per_call']
    memory = result.get('peak_memory_mb', {})
    lines = [result['machine'], result['setting'], '']
    lines.append('| variant | median time (ms) | min - max (ms) | '
                 'peak step memory (MB) |')
    lines.append('|---|---|---|---|')
    for name in (*INFERENCE_VARIANTS, *TRAIN_VARIANTS):
        mem = memory.get(name)
        low, high = min(samples[name]) * 1000, max(samples[name]) * 1000
        lines.append(f'| {VARIANT_TEXT[name]} | {times[name] * 1000:.1f} | '
                     f'{low:.1f} - {high:.1f} | '
                     f'{"-" if mem is None else f"{mem:.1f}"} |')
    lines += ['', '| comparison | quantity | ratio | target | met |',
              '|---|---|---|---|---|']
    for row in result['ratios']:
        ratio = '-' if row['ratio'] is None else f'{row["ratio"]:.3f}x'
        target = '-' if row['target'] is None else f'<= {row["target"]:.2f}x'
        met = {True: 'yes', False: 'NO', None: '-'}[row['met']]
        lines.append(f'| {row["name"]} | {row["quantity"]} | {ratio} | '
                     f'{target} | {met} |')
    return '\n'.join(lines)


def _common_argv(args: argparse.Namespace) -> List[str]:
    argv = [
        '--trunk', args.trunk, '--attention', args.attention,
        '--img-size', *map(str, args.img_size),
        '--crop-size', *map(str, args.crop_size),
        '--batch-size', str(args.batch_size),
        '--scales', *map(str, args.scales),
        '--lo-scale', str(args.lo_scale),
    ]
    if args.device:
        argv += ['--device', args.device]
    if args.threads:
        argv += ['--threads', str(args.threads)]
    return argv


def run(args: argparse.Namespace) -> Dict[str, object]:
    """Measure everything; print and write the report; return it."""
    import torch
    from mmengine.registry import init_default_scope

    import projects.hmsa  # noqa: F401  (registers the plugin)
    init_default_scope('mmseg')
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(
        args.device or ('cuda' if torch.cuda.is_available() else 'cpu'))

    with tempfile.TemporaryDirectory() as workdir:
        bench = Bench(args, device, workdir)
        if args.memory_probe:
            print(json.dumps(probe_memory(bench, args.memory_probe)))
            return {}
        machine = machine_line(device)
        setting = (
            f'setting: trunk {args.trunk}, attention {args.attention}, '
            f'inference {args.img_size[0]}x{args.img_size[1]} at scales '
            f'{", ".join(f"{s:g}" for s in args.scales)}; training '
            f'batch {args.batch_size} x {args.crop_size[0]}x'
            f'{args.crop_size[1]}, low scale {args.lo_scale:g}; '
            f'{args.warmup} warm-up + {args.repeats} timed rounds, '
            'interleaved, median')
        print(machine)
        print(setting)
        note = busy_machine_note()
        if note:
            print(note)
        print('timing (interleaved rounds) ...')
        start = time.time()
        times = measure_times(bench, (*INFERENCE_VARIANTS, *TRAIN_VARIANTS),
                              args.warmup, args.repeats)
        memory: Dict[str, float] = {}
        memory_method = None
        if not args.no_memory:
            print('peak memory of the training steps ...')
            for name in TRAIN_VARIANTS:
                if device.type == 'cuda':
                    probe = probe_memory(bench, name)
                else:
                    probe = memory_in_subprocess(name, _common_argv(args))
                memory[name] = probe['peak_bytes']
                memory_method = probe['method']
                print(f'  {name}: {probe["peak_bytes"] / 2**20:.1f} MB')
    medians = {k: statistics.median(v) for k, v in times.items()}
    result = dict(
        machine=machine,
        setting=setting,
        note=note,
        args={
            k: v
            for k, v in vars(args).items() if k not in ('memory_probe', )
        },
        seconds_per_call=times,
        median_seconds=medians,
        peak_memory_mb={k: v / 2**20 for k, v in memory.items()},
        memory_method=memory_method,
        ratios=compute_ratios(medians, memory),
        wall_seconds=round(time.time() - start, 1))
    report = format_report(result)
    print()
    print(report)
    if note:
        print(note)
    if memory_method:
        print(f'peak memory: {memory_method}; bytes above the memory in use '
              'just before the step')
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(result, f, indent=2)
        print(f'written {args.out}')
    return result


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command-line entry point; returns the exit status."""
    run(parse_args(argv))
    return 0


if __name__ == '__main__':
    sys.exit(main())
