"""Multi-seed auto-labelling study on the demo data.

Per seed: make a labelled and an unlabelled part, train the single-scale
model and the attention branch on the labelled part, auto-label the
unlabelled part with attention fusion over 0.5, 1, 2 and with the best
single scale (kept share and accuracy against the held-out true labels, at
every threshold), retrain the single-scale model on the labelled part plus
each label set (and plus the true labels, the ceiling), and evaluate every
model. Writes ``study.md``, ``study.json`` and ``study.png`` to the work
folder; finished steps with the same settings are reused.

Example::

    python tools/autolabel_study.py --seeds 0 1 2
"""
import argparse
import os.path as osp
import time

from projects.hmsa_tools import cli, workflow
from projects.hmsa_tools.autolabel_study import AutolabelStudy, plot

TOOLS_DIR = osp.dirname(osp.abspath(__file__))
CONFIGS_DIR = osp.join(osp.dirname(TOOLS_DIR), 'configs')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Auto-labelling study: labels from the best single '
        'scale against labels from attention fusion, over several seeds.')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    workflow.add_jobs_argument(parser)
    parser.add_argument('--work-dir',
                        default=osp.join('work_dirs', 'autolabel_study'))
    parser.add_argument('--num-labelled', type=int, default=16)
    parser.add_argument('--num-val', type=int, default=16)
    parser.add_argument('--num-unlabelled', type=int, default=48)
    parser.add_argument('--threshold', type=float, default=0.9)
    parser.add_argument('--single-iters', type=int, default=120)
    parser.add_argument('--attention-iters', type=int, default=150)
    parser.add_argument(
        '--labelled-times',
        type=int,
        default=None,
        help='repeats of the labelled part in the mix (default: '
        'unlabelled / labelled images, rounded)')
    parser.add_argument('--family',
                        choices=list(workflow.FAMILIES),
                        default=workflow.DEFAULT_FAMILY)
    parser.add_argument('--fresh',
                        action='store_true',
                        help='rerun every step (default: reuse finished '
                        'steps of the same settings)')
    args = parser.parse_args(argv)
    for name in ('num_labelled', 'num_val', 'num_unlabelled', 'single_iters',
                 'attention_iters'):
        if getattr(args, name) < 1:
            parser.error(f'--{name.replace("_", "-")} must be at least 1')
    if not 0 <= args.threshold <= 1:
        parser.error('--threshold must be in [0, 1]')
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    start = time.time()
    study = AutolabelStudy(
        steps=workflow.Steps(TOOLS_DIR, workflow.threads_per_job(args.jobs)),
        jobs=args.jobs,
        configs_dir=CONFIGS_DIR,
        work_dir=args.work_dir,
        seeds=args.seeds,
        num_labelled=args.num_labelled,
        num_val=args.num_val,
        num_unlabelled=args.num_unlabelled,
        threshold=args.threshold,
        single_iters=args.single_iters,
        attention_iters=args.attention_iters,
        labelled_times=args.labelled_times,
        family=args.family,
        reuse=not args.fresh)
    per_seed = study.run()
    plot(per_seed, osp.join(args.work_dir, 'study.png'))
    with open(osp.join(args.work_dir, 'study.md')) as f:
        print(f.read())
    print(f'Written {args.work_dir}/study.md, study.json and study.png '
          f'({(time.time() - start) / 60:.1f} min)')


if __name__ == '__main__':
    cli.run_tool(main)
