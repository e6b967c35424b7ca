"""Helpers of the tool tests: tiny options, tool runners."""
import importlib.util
import os
import os.path as osp
import subprocess
import sys
from typing import List, Optional

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOLS = osp.join(ROOT, 'tools')
DEMO = osp.join(ROOT, 'configs', 'demo')
STOCK_CONFIG = osp.join(DEMO, 'mnv2_single-scale_demo.py')
HMSA_CONFIG = osp.join(DEMO, 'hmsa_mnv2_demo.py')
ATTENTION_CONFIG = osp.join(DEMO, 'hmsa_mnv2_attn-only_demo.py')
HEIGHT, WIDTH = 64, 128

if TOOLS not in sys.path:
    sys.path.insert(0, TOOLS)


def load_tool(name: str):
    """Import tools/<name>.py under a name that cannot clash (``test``)."""
    path = osp.join(TOOLS, f'{name}.py')
    spec = importlib.util.spec_from_file_location(f'hmsa_tool_{name}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_options(data_root: str,
                 iters: Optional[int] = 2,
                 batch_size: int = 2,
                 workers: int = 0) -> List[str]:
    """--cfg-options that run a demo config on the tiny data quickly."""
    root = data_root.rstrip('/') + '/'
    scale, crop = f'({WIDTH},{HEIGHT})', f'({HEIGHT},{WIDTH})'
    options = [
        f'train_dataloader.dataset.data_root={root}',
        f'val_dataloader.dataset.data_root={root}',
        f'test_dataloader.dataset.data_root={root}',
        f'model.data_preprocessor.size={crop}',
        f'train_dataloader.dataset.pipeline.2.scale={scale}',
        f'train_dataloader.dataset.pipeline.3.crop_size={crop}',
        f'val_dataloader.dataset.pipeline.1.scale={scale}',
        f'test_dataloader.dataset.pipeline.1.scale={scale}',
        f'train_dataloader.batch_size={batch_size}',
        f'train_dataloader.num_workers={workers}',
        f'train_dataloader.persistent_workers={workers > 0}',
        'default_hooks.logger.interval=1',
    ]
    if iters is not None:
        options += [
            f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
            f'default_hooks.checkpoint.interval={iters}',
            f'param_scheduler.0.end={iters}'
        ]
    return options


def tool_env(**extra) -> dict:
    env = dict(os.environ)
    env.pop('PYTHONPATH', None)  # the tools find the repository themselves
    # One thread and passive waiting: OpenMP threads that spin while the
    # cores are shared with other processes slow a step down tenfold.
    env.setdefault('OMP_NUM_THREADS', '1')
    env.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
    env.update(extra)
    return env


def run_tool(args: List[str],
             cwd: str,
             timeout: float = 300,
             **env) -> subprocess.CompletedProcess:
    """Run ``python tools/<args>`` from ``cwd``; text output captured."""
    return subprocess.run([sys.executable, *args],
                          cwd=cwd,
                          env=tool_env(**env),
                          capture_output=True,
                          text=True,
                          timeout=timeout)
