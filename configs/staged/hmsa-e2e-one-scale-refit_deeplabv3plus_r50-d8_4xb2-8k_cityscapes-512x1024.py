# The recommended end-to-end path, step 2 of 2 (docs/study.md,
# e2e-one-scale-refit): after hmsa-e2e-one-scale_*.py, the attention branch
# alone fitted again at the test size, as hmsa-attn-whole_*.py fits it on the
# single-scale model. Everything but the branch stays as step 1 left it.
# Not yet measured on Cityscapes.
_base_ = ['./hmsa-attn-whole_deeplabv3plus_r50-d8_4xb2-8k_cityscapes-512x1024.py']

load_from = ('work_dirs/hmsa-e2e-one-scale_deeplabv3plus_r50-d8_4xb2-20k_cityscapes-512x1024/'
             'iter_20000.pth')
