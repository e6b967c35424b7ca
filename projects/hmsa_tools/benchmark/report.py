"""A whole benchmark run: what it measures, the ratios and the report.

The ratios and their targets:

(a) HMSA inference at the test scales (attention fusion) vs the stock
    single-scale DeepLabV3+ (the same weights) run once at each of those
    scales. Target <= 1.10x: the attention branch and the fusion should
    cost little on top of the passes themselves.
(b) HMSA inference vs MMSeg's own multi-scale test: ``SegTTAModel`` over its
    ``TestTimeAug`` pipeline with the same scales (mean of softmax). Both
    paths are timed from the image file on disk to the final prediction,
    pipelines included. Target <= 1.0x.
(c) One HMSA training step (two scales: 1.0 and ``lo_scale``) vs one stock
    single-scale training step on the same batch: time and peak memory.
    Target <= 1.35x each.
(d) One attention-only HMSA training step vs one full HMSA step (time).
    Target <= 0.5x.
(e) An attention-only step over two pairs, (lo, 1) and (1, 2), and
(f) a step of the explicit attention of Chen et al. over 0.5, 1, 2 with
    every weight trained, each vs the HMSA step (no targets).
(g) One network pass at scale 1 with each attention branch type vs the
    stock network's pass (no targets): what the branch adds.
(h) Peak memory of HMSA slide inference of a frame at the test scales vs
    the stock model's slide inference of the same frame at scale 2 alone
    (only with a frame size). Target <= 1.3x.
"""
import statistics
import tempfile
import time
from typing import Callable, Dict, List, Optional

import torch

from .measure import (
    busy_machine_note,
    machine_line,
    measure_memory,
    measure_times,
)
from .variants import (
    BRANCH_TYPES,
    VARIANTS,
    Bench,
    BenchSettings,
    variant_names,
)

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
    *((f'(g) one pass, {kind} branch vs stock pass', f'{kind}_pass',
       'stock_pass', 'time', None) for kind in BRANCH_TYPES),
    ('(h) HMSA slide at its scales vs stock slide at 2', 'hmsa_slide',
     'stock_slide_x2', 'memory', 1.3),
)


def compute_ratios(times: Dict[str, float],
                   memory: Dict[str, float]) -> List[Dict[str, object]]:
    """The ratios of :data:`RATIOS` from median times and peak memory.

    Args:
        times (dict[str, float]): Median seconds per variant.
        memory (dict[str, float]): Peak bytes per variant (may be empty
            when memory was not measured).

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
        rows.append(dict(name=name, quantity=quantity, numerator=num,
                         denominator=den, ratio=ratio, target=target,
                         met=met))
    return rows


def setting_line(settings: BenchSettings, warmup: int, repeats: int) -> str:
    """One line stating what was run."""
    s = settings
    line = (f'setting: trunk {s.trunk}, attention {s.attention}, inference '
            f'{s.img_size[0]}x{s.img_size[1]} at scales '
            f'{", ".join(f"{x:g}" for x in s.scales)}; training batch '
            f'{s.batch_size} x {s.crop_size[0]}x{s.crop_size[1]}, low scale '
            f'{s.lo_scale:g}; {warmup} warm-up + {repeats} timed rounds, '
            'interleaved, median')
    if s.frame_size is not None:
        (ch, cw), (sh, sw) = s.slide_window
        line += (f'; slide inference of a {s.frame_size[0]}x'
                 f'{s.frame_size[1]} frame, windows {ch}x{cw}, stride '
                 f'{sh}x{sw}')
    return line


def format_report(result: Dict[str, object]) -> str:
    """The printed tables: absolute numbers, then the ratios."""
    times = result['median_seconds']
    samples = result['seconds_per_call']
    memory = result.get('peak_memory_mb', {})
    lines = [result['machine'], result['setting'], '']
    lines.append('| variant | median time (ms) | min - max (ms) | '
                 'peak memory (MB) |')
    lines.append('|---|---|---|---|')
    for name in VARIANTS:
        if name not in times and name not in memory:
            continue
        mem = memory.get(name)
        timing = '- | -'
        if name in times:
            low, high = min(samples[name]) * 1000, max(samples[name]) * 1000
            timing = f'{times[name] * 1000:.1f} | {low:.1f} - {high:.1f}'
        lines.append(f'| {VARIANTS[name].text} | {timing} | '
                     f'{"-" if mem is None else f"{mem:.1f}"} |')
    lines += ['', '| comparison | quantity | ratio | target | met |',
              '|---|---|---|---|---|']
    for row in result['ratios']:
        ratio = '-' if row['ratio'] is None else f'{row["ratio"]:.3f}x'
        target = '-' if row['target'] is None else f'<= {row["target"]:.2f}x'
        met = {True: 'yes', False: 'NO', None: '-'}[row['met']]
        lines.append(f'| {row["name"]} | {row["quantity"]} | {ratio} | '
                     f'{target} | {met} |')
    params = result.get('branch_parameters', {})
    if params:
        lines.append('')
        lines.append('attention branch parameters: ' + ', '.join(
            f'{kind} {n:,}' for kind, n in params.items()))
    return '\n'.join(lines)


def run_benchmark(settings: BenchSettings,
                  warmup: int = 1,
                  repeats: int = 5,
                  memory: bool = True,
                  log: Callable[[str], None] = print) -> Dict[str, object]:
    """Measure every variant ``settings`` includes.

    Args:
        settings (BenchSettings): What to run.
        warmup (int): Untimed rounds before the timed ones.
        repeats (int): Timed rounds.
        memory (bool): Also measure peak memory.
        log (callable): Progress output.

    Returns:
        dict: ``machine``, ``setting``, ``note``, ``settings``,
        ``seconds_per_call``, ``median_seconds``, ``peak_memory_mb``,
        ``probe_seconds`` (the measured call of each memory probe),
        ``memory_method``, ``branch_parameters``, ``ratios`` and
        ``wall_seconds``.
    """
    device = torch.device(settings.device)
    machine, note = machine_line(device), busy_machine_note()
    setting = setting_line(settings, warmup, repeats)
    for line in (machine, setting, note):
        if line:
            log(line)
    start = time.time()
    with tempfile.TemporaryDirectory() as workdir:
        bench = Bench(settings, workdir)
        log('timing (interleaved rounds) ...')
        fns = {
            name: VARIANTS[name].build(bench)
            for name in variant_names(settings, timed=True)
        }
        times = measure_times(fns, device, warmup, repeats, log)
        probes: Dict[str, dict] = {}
        if memory:
            log('peak memory ...')
            probes = measure_memory(
                settings, variant_names(settings, memory=True), bench, log)
        branch_parameters = {
            kind: sum(p.numel() for p in bench.model(
                f'hmsa_{kind}_eval').attention_branch.parameters())
            for kind in BRANCH_TYPES
        }
    medians = {k: statistics.median(v) for k, v in times.items()}
    peak = {k: p['peak_bytes'] for k, p in probes.items()}
    method: Optional[str] = next(
        (p['method'] for p in probes.values()), None)
    return dict(
        machine=machine,
        setting=setting,
        note=note,
        settings=settings.to_dict(),
        seconds_per_call=times,
        median_seconds=medians,
        peak_memory_mb={k: v / 2**20 for k, v in peak.items()},
        probe_seconds={k: p['seconds'] for k, p in probes.items()},
        memory_method=method,
        branch_parameters=branch_parameters,
        ratios=compute_ratios(medians, peak),
        wall_seconds=round(time.time() - start, 1))
