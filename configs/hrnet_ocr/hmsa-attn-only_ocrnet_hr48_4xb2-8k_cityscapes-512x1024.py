# The staged small-GPU variant of the paper's model: load a trained
# single-scale HRNet-W48 OCRNet (ocrnet_hr48_4xb2-80k_cityscapes-x1-512x1024.py
# in this folder, or MMSeg's released checkpoint of the same config) and
# train only the attention branch. Trunk, both heads and their BatchNorm
# statistics stay frozen and run without autograd, so this fits a small GPU
# and a short schedule.
_base_ = ['./hmsa_ocrnet_hr48_4xb2-80k_cityscapes-512x1024.py']

# Everything but decode_head.1.attention comes from this checkpoint; the
# attention branch is new and starts from its initialisation (the log says
# so). Point it at your own run with --cfg-options load_from=PATH.
load_from = 'work_dirs/ocrnet_hr48_4xb2-80k_cityscapes-x1-512x1024/iter_80000.pth'  # noqa: E501

model = dict(
    # The trunk comes from load_from: no ImageNet weights are needed.
    pretrained=None,
    train_cfg=dict(attention_only=True))

param_scheduler = [
    dict(
        type='PolyLR',
        eta_min=1e-4,
        power=0.9,
        begin=0,
        end=8000,
        by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=8000, val_interval=2000)
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=2000))
