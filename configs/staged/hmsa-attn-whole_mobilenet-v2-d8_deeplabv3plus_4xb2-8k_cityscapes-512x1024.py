# Staged workflow, step 2 with the recommended staged recipe, on
# MobileNetV2-D8: the ResNet-50-D8 config with MMSeg's MobileNetV2 trunk, from
# the MobileNetV2 run.
_base_ = [
    './hmsa-attn-whole_deeplabv3plus_r50-d8_4xb2-8k_cityscapes-512x1024.py',
    '../_base_/models/mobilenet-v2-d8.py'
]
load_from = 'work_dirs/mobilenet-v2-d8_deeplabv3plus_4xb2-80k_cityscapes-x1-512x1024/iter_80000.pth'
model = dict(_base_.mobilenet_v2_d8, pretrained=None)
