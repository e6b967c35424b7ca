# The stock MMSeg ResNet-50-D8 DeepLabV3+ trained and evaluated on Cityscapes
# images scaled by 2 (4096x2048 instead of 2048x1024): the x0.5 config's
# pipelines at another resize scale. Model, crop size and schedule are MMSeg's.
_base_ = ['./deeplabv3plus_r50-d8_4xb2-80k_cityscapes-x0.5-512x1024.py']

# A 2048x4096 image through the network at once needs several GB; sliding
# 1024x1024 windows bounds the memory (the model itself is unchanged).
model = dict(
    test_cfg=dict(mode='slide', crop_size=(1024, 1024), stride=(768, 768)))

img_scale = (4096, 2048)
train_pipeline = [dict(t, scale=img_scale) if 'scale' in t else t for t in _base_.train_pipeline]
test_pipeline = [dict(t, scale=img_scale) if 'scale' in t else t for t in _base_.test_pipeline]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
