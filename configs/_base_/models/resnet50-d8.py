# MMSeg's ResNet-50-D8 trunk (ImageNet weights, backbone and the channels
# the heads read), to put back in a config whose trunk was swapped, such as
# the MobileNetV2 demo configs. MMEngine refuses a key that two bases both
# set, so the trunk has a name of its own: a config inherits this file
# beside the other base and sets ``model = _base_.resnet50_d8`` (Cityscapes)
# or ``model = _base_.resnet50_d8_demo`` (the demos: BN, no ImageNet
# weights, as configs/demo/ trains on a CPU offline).
resnet50_d8 = dict(
    pretrained='open-mmlab://resnet50_v1c',
    backbone=dict(
        _delete_=True,
        type='ResNetV1c',
        depth=50,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        dilations=(1, 1, 2, 4),
        strides=(1, 2, 1, 1),
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        norm_eval=False,
        style='pytorch',
        contract_dilation=True),
    decode_head=dict(in_channels=2048, c1_in_channels=256),
    auxiliary_head=dict(in_channels=1024))
resnet50_d8_demo = dict(
    resnet50_d8,
    pretrained=None,
    backbone=dict(
        resnet50_d8['backbone'],
        norm_cfg=dict(type='BN', requires_grad=True)))
