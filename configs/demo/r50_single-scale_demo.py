# The single-scale demo model on MMSeg's ResNet-50-D8 trunk instead of
# MobileNetV2: the same data, schedule and heads (their input widths follow
# the trunk), BatchNorm as in the demo, no ImageNet weights (none offline).
_base_ = ['./mnv2_single-scale_demo.py', '../_base_/models/resnet50-d8.py']

model = dict(
    _base_.resnet50_d8,
    pretrained=None,
    backbone=dict(
        _base_.resnet50_d8.backbone,
        norm_cfg=dict(type='BN', requires_grad=True)))
