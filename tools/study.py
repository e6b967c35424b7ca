"""Multi-seed study: every training recipe, every scale and fusion rule.

For each seed: train the single-scale model, then each recipe from it
(attention-only on one or two scale pairs, explicit attention, end-to-end
fine-tuning) or from scratch, evaluate every checkpoint at each single scale
and with every fusion rule and the oracle, and report mean +- std over the
seeds (``study.md``, ``study.json``; they also hold the other recipes'
runs already finished in the work folder). Differences smaller than twice
their standard deviation over the seeds are reported as ties.

Examples::

    # the demo data (made first), three seeds, every recipe
    python tools/study.py --seeds 0 1 2
    # the recommended recipe on the second synthetic family
    python tools/study.py --family street2 --recipes attn-finest \\
        --work-dir work_dirs/study_street2
    # the same, and its control, on the ResNet-50-D8 trunk
    python tools/study.py --trunk r50 --recipes single-continue \\
        attn-finest --work-dir work_dirs/study_r50
    # a recipe and its start, also on 64 held-out images of the family
    python tools/study.py --recipes e2e-one-scale-refit --heldout 64 \\
        --work-dir work_dirs/study_os
    # two recipes on data in the Cityscapes layout elsewhere
    python tools/study.py --data-root data/other --recipes attn-paper \\
        attn-higher
"""
import argparse
import os
import os.path as osp
import time

from projects.hmsa_tools import cli, study, workflow

#: The repository's tools (this folder) and demo configs, which the study
#: runs: found from here, so that it runs from any working directory.
TOOLS_DIR = osp.dirname(osp.abspath(__file__))
DEMO_CONFIGS = osp.join(osp.dirname(TOOLS_DIR), 'configs', 'demo')


def parse_args(argv=None) -> argparse.Namespace:
    recipes = study.demo_recipes(DEMO_CONFIGS)
    parser = argparse.ArgumentParser(
        description='Train and evaluate the HMSA recipes over several seeds.')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    workflow.add_jobs_argument(parser)
    parser.add_argument(
        '--recipes',
        nargs='+',
        choices=sorted(recipes),
        default=list(recipes),
        help='recipes to run (default: all); one that starts from another '
        'recipe\'s checkpoint runs after it, which runs too')
    parser.add_argument(
        '--work-dir', default=osp.join('work_dirs', 'study'))
    parser.add_argument(
        '--data-root',
        default=None,
        help='data in the Cityscapes layout (default: make the demo data '
        'of --family in WORK_DIR/data)')
    parser.add_argument('--data-seed', type=int, default=0)
    workflow.add_data_arguments(parser)
    parser.add_argument(
        '--trunk',
        choices=study.TRUNKS,
        default='mnv2',
        help='the demo configs\' trunk: MobileNetV2 (default) or '
        'ResNet-50-D8 (configs/demo/*r50*)')
    parser.add_argument(
        '--heldout',
        type=int,
        default=0,
        metavar='N',
        help='also evaluate every checkpoint on N images of the same family '
        'made apart (data seed + 1000), which nothing is trained or chosen '
        'on, and report them in a second table (default: 0, none); only '
        'with the data the study makes')
    parser.add_argument('--single-iters', type=int, default=120)
    parser.add_argument('--attention-iters', type=int, default=150)
    parser.add_argument(
        '--fresh',
        action='store_true',
        help='rerun everything (default: reuse finished runs of the same '
        'settings in WORK_DIR)')
    parser.add_argument(
        '--report-only',
        action='store_true',
        help='train nothing: tabulate the runs finished so far in WORK_DIR')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        default=[],
        help='extra key=value overrides for every run')
    args = parser.parse_args(argv)
    if args.data_root is not None and args.family != workflow.DEFAULT_FAMILY:
        parser.error('--family chooses the data the study makes; it cannot '
                     'go with --data-root')
    if len(set(args.seeds)) != len(args.seeds):
        parser.error(f'--seeds repeats a seed: {args.seeds}')
    missing = study.missing_configs(
        study.select_recipes(
            study.demo_recipes(DEMO_CONFIGS, trunk=args.trunk),
            args.recipes))
    if missing:
        parser.error(f'--trunk {args.trunk} has no config for: '
                     + ', '.join(missing))
    if args.heldout < 0:
        parser.error('--heldout must be >= 0')
    if args.heldout and args.data_root is not None:
        parser.error('--heldout makes held-out images of the demo data; it '
                     'cannot go with --data-root')
    for name in ('single_iters', 'attention_iters', 'num_val'):
        if getattr(args, name) < 1:
            parser.error(f'--{name.replace("_", "-")} must be >= 1')
    if args.num_train < 2:  # the split recipes hold a quarter out
        parser.error('--num-train must be >= 2')
    return args


#: The held-out images (``--heldout``): their data seed is the study's plus
#: this; the tool that makes them needs some training images too, which
#: nothing reads.
HELDOUT_SEED = 1000
HELDOUT_TRAIN = 4


def make_data(steps: workflow.Steps, data: dict, work_dir: str,
              fresh: bool) -> None:
    """Make the demo data ``data`` describes (its root, family, seed and
    sizes) once: a second study in the same folder (another seed or
    recipe, or one running beside it) reads the same files."""
    root = data['root']
    if study.is_reusable(root, data, not fresh):
        print(f'reusing the data in {root}')
        return
    if osp.exists(root + '.settings'):  # stale until remade
        os.remove(root + '.settings')
    name = osp.basename(root)
    steps.make_data(root, data['num_train'], data['num_val'], data['height'],
                    data['width'], data['seed'],
                    log=osp.join(work_dir, f'make_{name}.log'),
                    family=data['family'])
    study.write_stamp(root, data)


def main(argv=None) -> int:
    args = parse_args(argv)
    start = time.time()
    work_dir = osp.abspath(args.work_dir)
    os.makedirs(work_dir, exist_ok=True)
    data_root = osp.abspath(args.data_root or osp.join(work_dir, 'data'))
    # What the data is enters every run's reuse stamp: a run on another
    # family, seed or size is never taken for this one.
    data = dict(root=data_root)
    if args.data_root is None:
        data.update(family=args.family, seed=args.data_seed,
                    num_train=args.num_train, num_val=args.num_val,
                    height=args.height, width=args.width)
    steps = workflow.Steps(TOOLS_DIR, workflow.threads_per_job(args.jobs))
    heldout = None
    if args.heldout:
        root = osp.join(work_dir, 'heldout-data')
        heldout = study.HeldOut(
            tuple(workflow.data_options(root, args.height, args.width)),
            dict(data, root=root, seed=args.data_seed + HELDOUT_SEED,
                 num_train=HELDOUT_TRAIN, num_val=args.heldout),
            f'Held-out images: {args.heldout} more of the {args.family} '
            f'family (data seed {args.data_seed + HELDOUT_SEED}), which no '
            'run trained or was chosen on')
    if args.report_only:
        pass  # nothing is trained: the data is not needed
    elif args.data_root is None:
        make_data(steps, data, work_dir, args.fresh)
        if heldout is not None:
            make_data(steps, heldout.data, work_dir, args.fresh)
    elif not osp.isdir(data_root):
        raise cli.ToolError(f'--data-root {data_root} is not a folder')
    # the split recipes hold the last quarter of the training images out
    num_train = args.num_train
    if args.data_root is not None and osp.isdir(data_root):
        num_train = workflow.count_train_images(data_root)
        if num_train < 2:
            raise cli.ToolError(
                f'--data-root {data_root} holds {num_train} training images '
                '(leftImg8bit/train/<city>/*_leftImg8bit.png); the study '
                'needs at least 2')
    recipes = study.demo_recipes(DEMO_CONFIGS, args.single_iters,
                                 args.attention_iters, args.trunk, num_train)
    configs = study.demo_configs(DEMO_CONFIGS, args.trunk)
    # the report holds the other recipes' finished runs in WORK_DIR too,
    # so that a second study in the same folder does not drop the first's;
    # not with --fresh, whose new runs would stand beside ones that
    # started from the checkpoints they overwrite
    also_report = [] if args.fresh else [
        r for r in study.select_recipes(recipes, list(recipes))
        if osp.isfile(r.config)]
    settings = study.StudySettings(
        seeds=args.seeds,
        recipes=study.select_recipes(recipes, args.recipes),
        also_report=also_report,
        steps=steps,
        work_dir=work_dir,
        single_config=configs['single'],
        eval_config=configs['attn'],
        single_iters=args.single_iters,
        options=workflow.data_options(data_root, args.height,
                                      args.width) + list(args.cfg_options),
        data=data,
        reuse=not args.fresh,
        report_only=args.report_only,
        jobs=args.jobs,
        heldout=heldout)
    _, tables = study.run_study(settings)  # a failed step: cli.run_tool
    print()
    print(tables)
    minutes, seconds = divmod(int(time.time() - start), 60)
    print(f'\nstudy finished in {minutes} min {seconds} s; tables in '
          f'{osp.join(work_dir, "study.md")} and study.json')
    return 0


if __name__ == '__main__':
    cli.run_tool(main)
