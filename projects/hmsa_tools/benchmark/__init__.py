"""Speed, memory and FLOPs of HMSA against its baselines.

``variants`` holds what is run (settings, models, the registry of named
variants), ``measure`` how it is measured (interleaved timing, peak memory
in a fresh process), ``report`` a whole run with its ratios and targets,
and ``flops`` the FLOPs and parameters of the fused model and its parts.
"""
from .measure import measure_memory, measure_times, probe_memory
from .report import RATIOS, compute_ratios, format_report, run_benchmark
from .variants import VARIANTS, Bench, BenchSettings, register_variant

__all__ = [
    'BenchSettings', 'Bench', 'VARIANTS', 'register_variant',
    'measure_times', 'measure_memory', 'probe_memory', 'RATIOS',
    'compute_ratios', 'format_report', 'run_benchmark'
]
