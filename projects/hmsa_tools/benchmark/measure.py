"""How the benchmark measures: interleaved timing and peak memory.

Timing: every variant runs ``warmup`` times and then ``repeats`` times,
interleaved round by round (the order rotates each round) so that a slow
moment of a shared machine spreads over all variants; the caller reports
the median. On a GPU, CUDA events time each call.

Peak memory of one call: on a GPU, ``torch.cuda.max_memory_allocated``
above what was allocated before the call. On a CPU, each variant runs in a
fresh Python process (``python -m projects.hmsa_tools.benchmark``) that resets
the kernel's peak-RSS counter (``/proc/self/clear_refs``) and reports the
peak resident memory (``VmHWM``) during the call above the resident memory
just before it; glibc is told to return large freed blocks to the system at
once (``MALLOC_MMAP_THRESHOLD_``), so the resident size follows what
tensors hold. This counts activations, gradients and temporaries, not the
weights and optimiser state that exist before the call.
"""
import ctypes
import gc
import json
import os
import platform
import re
import subprocess
import sys
import time
from typing import Callable, Dict, List, Mapping, Optional, Sequence

import torch

from .variants import VARIANTS, Bench, BenchSettings


def time_call(fn: Callable[[], None], device: torch.device) -> float:
    """Seconds one call of ``fn`` takes (CUDA events on a GPU)."""
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


def measure_times(fns: Mapping[str, Callable[[], None]],
                  device: torch.device,
                  warmup: int,
                  repeats: int,
                  log: Callable[[str], None] = print
                  ) -> Dict[str, List[float]]:
    """Time every function, interleaved round by round.

    Args:
        fns (Mapping[str, callable]): What to time, by name.
        device (torch.device): Where they run.
        warmup (int): Untimed rounds first.
        repeats (int): Timed rounds.
        log (callable): Progress output.

    Returns:
        dict[str, list[float]]: Seconds per call of each function.
    """
    order = list(fns)
    times: Dict[str, List[float]] = {name: [] for name in order}
    total = warmup + repeats
    for r in range(total):
        shift = r % len(order)
        for name in order[shift:] + order[:shift]:
            seconds = time_call(fns[name], device)
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


def probe_memory(fn: Callable[[], None], device: torch.device,
                 warm_up: bool = True) -> Dict[str, object]:
    """Peak memory of one call of ``fn`` in this process.

    On a CPU, call it in a fresh process (:func:`memory_in_subprocess`):
    the resident size of a process that has run other things says little.

    Args:
        fn (callable): What to measure.
        device (torch.device): Where it runs.
        warm_up (bool): Call ``fn`` once first (optimiser state, allocator,
            lazy initialisation).

    Returns:
        dict: ``peak_bytes`` (above the memory in use before the call),
        ``base_bytes``, ``seconds`` (of the measured call) and ``method``.
    """
    if warm_up:
        fn()
    gc.collect()
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        seconds = time_call(fn, device)
        peak = torch.cuda.max_memory_allocated(device)
        method = 'torch.cuda.max_memory_allocated'
    else:
        _malloc_trim()
        if _reset_peak_rss():
            base = _proc_status('VmRSS')
            seconds = time_call(fn, device)
            peak = _proc_status('VmHWM')
            method = 'VmHWM after clear_refs, fresh process'
        else:  # no clear_refs: the process-wide high-water mark
            import resource
            base = _proc_status('VmRSS') or 0
            seconds = time_call(fn, device)
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            method = 'ru_maxrss, fresh process'
    return dict(peak_bytes=peak - base, base_bytes=base, seconds=seconds,
                method=method)


def probe_variant(settings: BenchSettings, name: str,
                  workdir: str) -> Dict[str, object]:
    """:func:`probe_memory` of variant ``name`` built from ``settings``."""
    variant = VARIANTS[name]
    bench = Bench(settings, workdir)
    return probe_memory(variant.build(bench), bench.device, variant.warm_up)


def memory_in_subprocess(settings: BenchSettings,
                         name: str) -> Dict[str, object]:
    """:func:`probe_variant` in a fresh Python process."""
    env = dict(os.environ)
    # Large blocks come from mmap and go back to the system when freed, so
    # the resident size follows the tensors alive.
    env['MALLOC_MMAP_THRESHOLD_'] = str(128 * 1024)
    env['MALLOC_TRIM_THRESHOLD_'] = str(128 * 1024)
    cmd = [
        sys.executable, '-m', 'projects.hmsa_tools.benchmark',
        json.dumps(settings.to_dict()), name
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f'memory probe {name} failed:\n{proc.stderr}')
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith('{')][-1]
    return json.loads(line)


def measure_memory(settings: BenchSettings,
                   names: Sequence[str],
                   bench: Optional[Bench] = None,
                   log: Callable[[str], None] = print) -> Dict[str, dict]:
    """Peak memory of each variant: in this process on a GPU (through
    ``bench``), else each in a fresh process."""
    probes = {}
    for name in names:
        if bench is not None and bench.device.type == 'cuda':
            variant = VARIANTS[name]
            probes[name] = probe_memory(
                variant.build(bench), bench.device, variant.warm_up)
        else:
            probes[name] = memory_in_subprocess(settings, name)
        log(f'  {name}: {probes[name]["peak_bytes"] / 2**20:.1f} MB')
    return probes


def machine_line(device: torch.device) -> str:
    """One line naming the CPU, cores, torch and the device."""
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
