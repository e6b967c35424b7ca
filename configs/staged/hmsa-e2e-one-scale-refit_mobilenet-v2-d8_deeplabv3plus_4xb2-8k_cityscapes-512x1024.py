# The recommended end-to-end path, step 2, on MobileNetV2-D8: the
# ResNet-50-D8 config with MMSeg's MobileNetV2 trunk, from the MobileNetV2 run.
_base_ = [
    './hmsa-e2e-one-scale-refit_deeplabv3plus_r50-d8_4xb2-8k_cityscapes-512x1024.py',
    '../_base_/models/mobilenet-v2-d8.py'
]
load_from = ('work_dirs/hmsa-e2e-one-scale_mobilenet-v2-d8_deeplabv3plus_4xb2-20k_cityscapes-512x1024/'
             'iter_20000.pth')
model = dict(_base_.mobilenet_v2_d8, pretrained=None)
