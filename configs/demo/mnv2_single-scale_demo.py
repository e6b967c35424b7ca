# Step 1 of the staged workflow on the synthetic demo data of
# tools/make_demo_data.py (128x256 images), sized for a CPU (2-4 s per
# training iteration on 2 cores): the stock MMSeg MobileNetV2-D8 DeepLabV3+
# (EncoderDecoder, DepthwiseSeparableASPPHead), trained at one scale.
# Only the data root, image sizes, schedule, normalisation (BN: SyncBN needs
# CUDA) and initialisation (no ImageNet download) differ from MMSeg's config.
_base_ = [
    'mmseg::mobilenet_v2/'
    'mobilenet-v2-d8_deeplabv3plus_4xb2-80k_cityscapes-512x1024.py'
]
custom_imports = dict(imports=['projects.hmsa'], allow_failed_imports=False)

data_root = 'work_dirs/demo/data/'
img_scale = (256, 128)
crop_size = (128, 256)
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    pretrained=None,
    data_preprocessor=dict(size=crop_size),
    backbone=dict(norm_cfg=norm_cfg),
    decode_head=dict(norm_cfg=norm_cfg),
    auxiliary_head=dict(norm_cfg=norm_cfg))

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
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(
    logger=dict(interval=5, log_metric_by_epoch=False),
    checkpoint=dict(interval=max_iters))
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
