"""Peak memory of one benchmark variant, measured in this fresh process.

``python -m projects.hmsa_tools.benchmark SETTINGS_JSON VARIANT`` prints one
JSON line (:func:`~projects.hmsa_tools.benchmark.measure.probe_variant`); the
benchmark starts it for each variant it measures on a CPU.
"""
import json
import sys
import tempfile

import torch
from mmengine.registry import init_default_scope

import projects.hmsa  # noqa: F401  (registers the plugin)
from projects.hmsa_tools.benchmark.measure import probe_variant
from projects.hmsa_tools.benchmark.variants import BenchSettings

if __name__ == '__main__':
    settings = BenchSettings.from_dict(json.loads(sys.argv[1]))
    init_default_scope('mmseg')
    if settings.threads:
        torch.set_num_threads(settings.threads)
    with tempfile.TemporaryDirectory() as workdir:
        print(json.dumps(probe_variant(settings, sys.argv[2], workdir)))
