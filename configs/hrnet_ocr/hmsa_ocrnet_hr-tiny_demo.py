# The paper's HRNet-OCR HMSA model (hmsa_ocrnet_hr48_4xb2-80k_cityscapes-
# 512x1024.py) at demo size: an HRNet with one block per branch and widths
# 4 to 32, narrow heads and attention branch, with the demo data, sizes and
# schedule of configs/demo (synthetic 128x256 images, sized for a CPU).
# Training settings (two scales 0.5 and 1.0, per-scale loss 0.05, soft
# regions fused with the same attention) and inference (0.5, 1, 2) are the
# paper config's; BN instead of SyncBN (which needs CUDA), no ImageNet
# download.
_base_ = ['../demo/mnv2_single-scale_demo.py']

norm_cfg = dict(type='BN', requires_grad=True)
widths = [4, 8, 16, 32]
model = dict(
    _delete_=True,
    type='HMSACascadeEncoderDecoder',
    num_stages=2,
    pretrained=None,
    data_preprocessor=_base_.model.data_preprocessor,
    backbone=dict(
        type='HRNet',
        norm_cfg=norm_cfg,
        norm_eval=False,
        extra=dict(
            stage1=dict(
                num_modules=1,
                num_branches=1,
                block='BOTTLENECK',
                num_blocks=(1, ),
                num_channels=(8, )),
            stage2=dict(
                num_modules=1,
                num_branches=2,
                block='BASIC',
                num_blocks=(1, 1),
                num_channels=(4, 8)),
            stage3=dict(
                num_modules=1,
                num_branches=3,
                block='BASIC',
                num_blocks=(1, 1, 1),
                num_channels=(4, 8, 16)),
            stage4=dict(
                num_modules=1,
                num_branches=4,
                block='BASIC',
                num_blocks=(1, 1, 1, 1),
                num_channels=widths))),
    decode_head=[
        dict(
            type='FCNHead',
            in_channels=widths,
            channels=sum(widths),
            input_transform='resize_concat',
            in_index=(0, 1, 2, 3),
            kernel_size=1,
            num_convs=1,
            norm_cfg=norm_cfg,
            concat_input=False,
            dropout_ratio=-1,
            num_classes=19,
            align_corners=False,
            loss_decode=dict(
                type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4)),
        dict(
            type='OCRHead',
            in_channels=widths,
            channels=32,
            ocr_channels=16,
            input_transform='resize_concat',
            in_index=(0, 1, 2, 3),
            norm_cfg=norm_cfg,
            dropout_ratio=-1,
            num_classes=19,
            align_corners=False,
            loss_decode=dict(
                type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0))
    ],
    attention_cfg=dict(type='paper', channels=16, num_convs=2),
    train_cfg=dict(lo_scale=0.5, scale_loss_weight=0.05),
    test_cfg=dict(mode='whole', scales=[0.5, 1.0, 2.0]))
