# The stock MMSeg ResNet-50-D8 DeepLabV3+ trained and evaluated on Cityscapes
# images scaled by 0.5 (1024x512 instead of 2048x1024). Model, crop size and
# schedule are MMSeg's; only the resize scale of MMSeg's pipelines changes.
# Labels stay at full resolution: predictions are resized back to the
# original image and scored there, as for every Cityscapes model.
_base_ = ['./deeplabv3plus_r50-d8_4xb2-80k_cityscapes-x1-512x1024.py']

img_scale = (1024, 512)
train_pipeline = [dict(t, scale=img_scale) if 'scale' in t else t for t in _base_.train_pipeline]
test_pipeline = [dict(t, scale=img_scale) if 'scale' in t else t for t in _base_.test_pipeline]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
