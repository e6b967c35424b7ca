# The stock MMSeg HRNetV2-W48 OCRNet trained and evaluated on Cityscapes
# images scaled by 0.5 (1024x512 instead of 2048x1024). Model, crop size and
# schedule are MMSeg's; only the resize scale of the data pipelines changes.
_base_ = ['./ocrnet_hr48_4xb2-80k_cityscapes-x1-512x1024.py']

img_scale = (1024, 512)
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
