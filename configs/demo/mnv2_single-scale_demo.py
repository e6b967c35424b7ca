# Step 1 of the staged workflow on the demo data: the stock MMSeg
# MobileNetV2-D8 DeepLabV3+ (EncoderDecoder, DepthwiseSeparableASPPHead),
# trained at one scale. Data, sizes and schedule are those of
# hmsa_mnv2_demo.py; the model is MMSeg's, unchanged.
_base_ = ['./hmsa_mnv2_demo.py']

norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    type='EncoderDecoder',
    decode_head=dict(
        _delete_=True,
        type='DepthwiseSeparableASPPHead',
        in_channels=320,
        in_index=3,
        channels=512,
        dilations=(1, 12, 24, 36),
        c1_in_channels=24,
        c1_channels=48,
        dropout_ratio=0.1,
        num_classes=19,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    train_cfg=dict(_delete_=True),
    test_cfg=dict(_delete_=True, mode='whole'))
