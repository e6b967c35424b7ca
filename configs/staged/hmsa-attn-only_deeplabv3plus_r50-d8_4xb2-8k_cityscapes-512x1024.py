# Staged workflow, step 2: load a trained single-scale ResNet-50 DeepLabV3+
# (step 1, configs/single_scale/) into HMSA and train only the attention
# branch. Trunk, head and their BatchNorm statistics stay frozen, so this runs
# on a small GPU (or a CPU) and takes a short schedule.
_base_ = ['../hmsa/hmsa_deeplabv3plus_r50-d8_4xb2-80k_cityscapes-512x1024.py']

# Everything but decode_head.attention comes from this checkpoint; the
# attention branch is new and starts from its initialisation (the log says
# so). Point it at your own run with --cfg-options load_from=PATH.
load_from = 'work_dirs/deeplabv3plus_r50-d8_4xb2-80k_cityscapes-x1-512x1024/iter_80000.pth'

model = dict(
    # The trunk comes from load_from: no ImageNet weights are needed.
    pretrained=None,
    train_cfg=dict(attention_only=True))

param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=8000, by_epoch=False)]
train_cfg = dict(max_iters=8000, val_interval=2000)
default_hooks = dict(checkpoint=dict(interval=2000))
