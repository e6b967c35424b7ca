# The stock MMSeg HRNetV2-W48 OCRNet trained and evaluated on Cityscapes
# images scaled by 2 (4096x2048 instead of 2048x1024): the x0.5 config's
# pipelines at another resize scale. Model, crop size and schedule are MMSeg's.
_base_ = ['./ocrnet_hr48_4xb2-80k_cityscapes-x0.5-512x1024.py']

img_scale = (4096, 2048)
train_pipeline = [dict(t, scale=img_scale) if 'scale' in t else t for t in _base_.train_pipeline]
test_pipeline = [dict(t, scale=img_scale) if 'scale' in t else t for t in _base_.test_pipeline]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
