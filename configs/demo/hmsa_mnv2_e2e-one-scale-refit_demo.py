# The end-to-end path whose fusion beats the network's own best single scale
# on the demo's validation images: the study's e2e-one-scale-refit
# (docs/study.md). After hmsa_mnv2_e2e-one-scale_demo.py (every weight, the
# network at scale 1 only, the branch on randomly resized crops), the
# attention branch alone is fitted again on whole images at the test size,
# as hmsa_mnv2_attn-whole_demo.py fits it on the single-scale model:
#
#   python tools/train.py configs/demo/hmsa_mnv2_e2e-one-scale_demo.py
#   python tools/train.py configs/demo/hmsa_mnv2_e2e-one-scale-refit_demo.py
#
# Everything but the branch stays as the end-to-end run left it.
_base_ = ['./hmsa_mnv2_attn-whole_demo.py']

load_from = 'work_dirs/hmsa_mnv2_e2e-one-scale_demo/iter_100.pth'
