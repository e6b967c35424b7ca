# MMSeg's MobileNetV2-D8 trunk (ImageNet weights, backbone and the channels
# the heads read) in place of the ResNet-50-D8 one of a DeepLabV3+ config, as
# MMSeg's configs/mobilenet_v2/ swap it in. MMEngine refuses a key that two
# bases both set, so the trunk has a name of its own: a config inherits this
# file beside its ResNet-50 twin and sets ``model = _base_.mobilenet_v2_d8``.
mobilenet_v2_d8 = dict(
    pretrained='mmcls://mobilenet_v2',
    backbone=dict(
        _delete_=True,
        type='MobileNetV2',
        widen_factor=1.,
        strides=(1, 2, 2, 1, 1, 1, 1),
        dilations=(1, 1, 1, 2, 2, 4, 4),
        out_indices=(1, 2, 4, 6),
        norm_cfg=dict(type='SyncBN', requires_grad=True)),
    decode_head=dict(in_channels=320, c1_in_channels=24),
    auxiliary_head=dict(in_channels=96))
