"""Tabulate MMSeg's model families as HMSA models: checkpoint transfer and a
demo-size training run each (``projects.hmsa_tools.model_families``).

For each family, the tiny version of MMSeg's stock Cityscapes config and its
HMSA version (segmentor type + ``attention_cfg``) are built; the stock
weights are loaded into the HMSA model (missing keys, largest logit
difference at scales [1.0]); then the HMSA model trains a few iterations on
the demo data (two scales, 0.5 and 1.0) and is validated at 0.5, 1, 2.

Example::

    python tools/make_demo_data.py --out /tmp/demo_data --num-train 8 \\
        --num-val 4
    python tools/model_families.py --data /tmp/demo_data --iters 20
"""
import argparse
import logging
import os.path as osp
import tempfile

from mmengine.logging import MMLogger

from projects.hmsa_tools import cli
from projects.hmsa_tools.model_families import (
    FAMILIES,
    check_transfer,
    demo_training_run,
    tiny_stock_cfg,
    to_hmsa,
)

DEMO_CONFIG = osp.join(
    osp.dirname(osp.dirname(osp.abspath(__file__))), 'configs', 'hrnet_ocr',
    'hmsa_ocrnet_hr-tiny_demo.py')


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data', required=True, help='demo dataset root')
    parser.add_argument('--iters', type=int, default=20)
    parser.add_argument('--batch-size', type=int, default=4)
    parser.add_argument(
        '--families', nargs='+', default=list(FAMILIES),
        choices=list(FAMILIES))
    parser.add_argument('--work-dir', help='logs (default: a temp folder)')
    parser.add_argument(
        '--config',
        default=DEMO_CONFIG,
        help='demo-size config whose data, schedule and runtime each run '
        'borrows (default: configs/hrnet_ocr/hmsa_ocrnet_hr-tiny_demo.py)')
    args = parser.parse_args(argv)
    if not osp.isdir(args.data):
        raise cli.ToolError(f'no dataset at {args.data}; make one with '
                            'tools/make_demo_data.py')
    work = args.work_dir or tempfile.mkdtemp(prefix='model_families_')
    rows = []
    for name in args.families:
        stock = tiny_stock_cfg(name)
        hmsa = to_hmsa(
            stock,
            train_cfg=dict(lo_scale=0.5, scale_loss_weight=0.05),
            test_cfg=dict(mode='whole', scales=[0.5, 1.0, 2.0]))
        MMLogger.get_current_instance().setLevel(logging.WARNING)
        transfer = check_transfer(stock, hmsa)
        run = demo_training_run(hmsa, args.config, args.data,
                                osp.join(work, name),
                                args.iters, args.batch_size)
        prefix = {k.rsplit('.attention.', 1)[0] for k in transfer.missing}
        rows.append(
            f'| {name} | {stock["backbone"]["type"]} | '
            f'{len(transfer.missing)} (all under '
            f'{", ".join(sorted(p + ".attention" for p in prefix))}) | '
            f'{len(transfer.unexpected)} | {transfer.max_logit_diff:.1e} | '
            f'{run.iters} | {run.first_loss:.2f} -> {run.last_loss:.2f} | '
            f'{run.seconds_per_iter:.2f} | {run.miou:.1f} |')
        print(rows[-1], flush=True)
    print('\n| family | backbone | missing keys | unexpected | max logit '
          'diff at [1.0] | iters | loss first -> last | s/iter | val mIoU '
          '(0.5, 1, 2) |')
    print('|---|---|---|---|---|---|---|---|---|')
    print('\n'.join(rows))
    print(f'\nlogs: {work}')


if __name__ == '__main__':
    cli.run_tool(main)
