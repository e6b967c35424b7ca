# NVIDIA/semantic-segmentation's multi-scale attention HRNet-OCR (their arch
# ocrnet.HRNet_Mscale, class MscaleOCR), rebuilt in MMSeg so that
# tools/convert_nvidia.py maps their checkpoint onto it: their HRNetV2-W48
# trunk, OCR block, attention branch, normalisation and multi-scale
# inference (nscale_forward). Evaluation settings are MMSeg's Cityscapes
# ones (full 1024x2048 images).
#
# The model is the paper's HMSA OCRNet config as it is: MMSeg's HRNet-W48
# has NVIDIA's names and shapes (cfg.MODEL.OCR_EXTRA), MMSeg's FCN head is
# their aux_head (720 channels, 1x1; their conv bias is folded into the
# BatchNorm by the converter) and MMSeg's OCR head their OCR block
# (OCR.MID_CHANNELS 512 = channels, OCR.KEY_CHANNELS 256 = ocr_channels).
# Their attention head (make_attn_head, SEGATTN_BOT_CH 256, inner 3x3) is
# the paper branch: two 3x3 conv-BN-ReLU of 256 channels on the OCR
# features, a 1x1 conv to one channel without bias, a sigmoid.
_base_ = ['../hrnet_ocr/hmsa_ocrnet_hr48_4xb2-80k_cityscapes-512x1024.py']

model = dict(
    # NVIDIA: ImageNet mean/std of RGB images in [0, 1]; the same numbers
    # times 255 on MMSeg's BGR-loaded images turned to RGB (MMSeg's own).
    data_preprocessor=dict(
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True),
    # every weight comes from the converted checkpoint
    pretrained=None,
    attention_cfg=dict(type='paper', channels=256, num_convs=2, bias=False),
    # nscale_forward: whole images at 0.5, 1, 2 (floored scaled sizes), each
    # scale's logits and attention resized to its input's size before fusing
    test_cfg=dict(
        _delete_=True,
        mode='whole',
        scales=[0.5, 1.0, 2.0],
        fusion='attention',
        fusion_grid='image',
        scale_rounding='floor'))
