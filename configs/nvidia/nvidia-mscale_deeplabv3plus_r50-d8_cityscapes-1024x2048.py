# NVIDIA/semantic-segmentation's multi-scale attention DeepLabV3+ on its
# ResNet-50 trunk (their arch mscale.DeepV3R50, class MscaleV3Plus), rebuilt
# in MMSeg so that tools/convert_nvidia.py maps their checkpoint onto it and
# inference gives their logits: their trunk, decoder, attention branch,
# normalisation and multi-scale inference (nscale_forward). Evaluation
# settings are MMSeg's Cityscapes ones (full 1024x2048 images).
_base_ = [
    'mmseg::deeplabv3plus/deeplabv3plus_r50-d8_4xb2-80k_cityscapes-512x1024.py'
]
custom_imports = dict(imports=['projects.hmsa'], allow_failed_imports=False)

norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    type='HMSAEncoderDecoder',
    # NVIDIA: ImageNet mean/std of RGB images in [0, 1]; the same numbers
    # times 255 on MMSeg's BGR-loaded images turned to RGB (MMSeg's own).
    data_preprocessor=dict(
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True),
    pretrained=None,
    # torchvision's ResNet-50 (7x7 stem) with output stride 8: every 3x3
    # convolution of layer3 and layer4 dilated by 2 and 4, the first block's
    # too (no contraction)
    backbone=dict(
        _delete_=True,
        type='ResNet',
        depth=50,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        dilations=(1, 1, 2, 4),
        strides=(1, 2, 1, 1),
        contract_dilation=False,
        norm_cfg=norm_cfg,
        norm_eval=False,
        style='pytorch'),
    decode_head=dict(
        _delete_=True,
        type='MscaleV3PlusHead',
        in_channels=2048,
        in_index=3,
        channels=256,
        dilations=(1, 12, 24, 36),
        c1_in_channels=256,
        c1_channels=48,
        dropout_ratio=0,
        num_classes=19,
        norm_cfg=norm_cfg,
        align_corners=False,
        # make_attn_head: two 3x3 conv-BN-ReLU of 256 channels, a 1x1 conv
        # to one channel (no bias: the converter sets ours to zero), sigmoid
        attention_cfg=dict(type='paper', channels=256, num_convs=2),
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=None,
    # two_scale_forward: 0.5 and 1.0, per-scale loss as their Cityscapes
    # scripts set it
    train_cfg=dict(lo_scale=0.5, scale_loss_weight=0.05),
    # nscale_forward: each scale's logits and attention resized to its
    # input's size before fusing, floored scaled sizes, scales 0.5, 1, 2
    test_cfg=dict(
        mode='whole',
        scales=[0.5, 1.0, 2.0],
        fusion='attention',
        fusion_grid='image',
        scale_rounding='floor'))
