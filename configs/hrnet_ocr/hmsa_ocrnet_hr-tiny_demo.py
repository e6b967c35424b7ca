# The paper's HRNet-OCR HMSA model (hmsa_ocrnet_hr48_4xb2-80k_cityscapes-
# 512x1024.py) at demo size: an HRNet with one block per branch and widths
# 4 to 32, narrow heads and attention branch, on the synthetic demo data of
# tools/make_demo_data.py (128x256 images), sized for a CPU. Training
# settings (two scales 0.5 and 1.0, per-scale loss 0.05, soft regions fused
# with the same attention) and inference (0.5, 1, 2) are the paper
# config's; BN instead of SyncBN (which needs CUDA), no ImageNet download.
_base_ = ['./hmsa_ocrnet_hr48_4xb2-80k_cityscapes-512x1024.py']

data_root = 'work_dirs/demo/data/'
img_scale = (256, 128)
crop_size = (128, 256)
norm_cfg = dict(type='BN', requires_grad=True)
widths = [4, 8, 16, 32]
model = dict(
    pretrained=None,
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        norm_cfg=norm_cfg,
        extra=dict(
            stage1=dict(num_blocks=(1, ), num_channels=(8, )),
            stage2=dict(num_blocks=(1, 1), num_channels=(4, 8)),
            stage3=dict(
                num_modules=1, num_blocks=(1, 1, 1), num_channels=(4, 8, 16)),
            stage4=dict(
                num_modules=1,
                num_blocks=(1, 1, 1, 1),
                num_channels=(4, 8, 16, 32)))),
    decode_head=[
        dict(
            type='FCNHead',
            in_channels=widths,
            channels=sum(widths),
            input_transform='resize_concat',
            in_index=(0, 1, 2, 3),
            kernel_size=1,
            num_convs=1,
            norm_cfg=norm_cfg,
            concat_input=False,
            dropout_ratio=-1,
            num_classes=19,
            align_corners=False,
            loss_decode=dict(
                type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4)),
        dict(
            type='OCRHead',
            in_channels=widths,
            channels=32,
            ocr_channels=16,
            input_transform='resize_concat',
            in_index=(0, 1, 2, 3),
            norm_cfg=norm_cfg,
            dropout_ratio=-1,
            num_classes=19,
            align_corners=False,
            loss_decode=dict(
                type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0))
    ],
    attention_cfg=dict(channels=16),
    test_cfg=dict(mode='whole'))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(
        type='RandomResize',
        scale=img_scale,
        ratio_range=(0.5, 2.0),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=4,
    num_workers=1,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader

# A short schedule; AdamW converges much faster than SGD from scratch.
max_iters = 120
optim_wrapper = dict(
    optimizer=dict(
        _delete_=True, type='AdamW', lr=2e-3, betas=(0.9, 0.999),
        weight_decay=0.01))
param_scheduler = [
    dict(
        type='PolyLR',
        eta_min=1e-5,
        power=0.9,
        begin=0,
        end=max_iters,
        by_epoch=False)
]
train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=5, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False,
                    interval=max_iters))
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
