# The single-scale demo model on MMSeg's ResNet-50-D8 trunk instead of
# MobileNetV2: the same data, schedule and heads (their input widths follow
# the trunk), BatchNorm as in the demo, no ImageNet weights (none offline).
_base_ = ['./mnv2_single-scale_demo.py', '../_base_/models/resnet50-d8.py']

model = _base_.resnet50_d8_demo
