# The stock MMSeg MobileNetV2-D8 DeepLabV3+ on Cityscapes images scaled by
# 2: the ResNet-50-D8 config with MMSeg's MobileNetV2 trunk.
_base_ = [
    './deeplabv3plus_r50-d8_4xb2-80k_cityscapes-x2-512x1024.py',
    '../_base_/models/mobilenet-v2-d8.py'
]
model = _base_.mobilenet_v2_d8
