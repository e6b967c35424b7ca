# The stock MMSeg ResNet-50-D8 DeepLabV3+ trained and evaluated on Cityscapes
# images scaled by 2 (4096x2048 instead of 2048x1024). Model, crop size and
# schedule are MMSeg's; only the resize scale of the data pipelines changes.
_base_ = ['mmseg::deeplabv3plus/deeplabv3plus_r50-d8_4xb2-80k_cityscapes-512x1024.py']
custom_imports = dict(imports=['projects.hmsa'], allow_failed_imports=False)

img_scale = (4096, 2048)
crop_size = (512, 1024)
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
    # Labels stay at full resolution: predictions are resized back to the
    # original image and scored there, as for every Cityscapes model.
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

# A 2048x4096 image through the network at once needs several GB; sliding
# 1024x1024 windows bounds the memory (the model itself is unchanged).
model = dict(
    test_cfg=dict(mode='slide', crop_size=(1024, 1024), stride=(768, 768)))
