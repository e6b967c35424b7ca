# Hierarchical multi-scale attention on ResNet-50-D8 DeepLabV3+, Cityscapes
# 512x1024 crops, 4 GPUs x 2 images, 80k iterations: MMSeg's stock model and
# schedule; what follows is what HMSA changes.
_base_ = [
    'mmseg::deeplabv3plus/deeplabv3plus_r50-d8_4xb2-80k_cityscapes-512x1024.py'
]
custom_imports = dict(imports=['projects.hmsa'], allow_failed_imports=False)

# The stock DeepLabV3+ head plus the attention branch (its default, a 1x1
# bottleneck of 64 channels); every other parameter keeps MMSeg's name, so a
# single-scale checkpoint loads. Training takes HMSAEncoderDecoder's
# defaults: the 1.0 crop and its 0.5 copy fused by attention, plus a loss of
# weight 0.05 on each scale's own prediction.
model = dict(
    type='HMSAEncoderDecoder',
    decode_head=dict(type='HMSASepASPPHead'),
    # Infer at 0.5, 1.0 and 2.0 and chain the pairwise attention fusion.
    # A full 1024x2048 image is 2048x4096 at scale 2: windows of 1024x1024
    # keep the memory of one forward pass bounded. Fusion on the highest
    # scale's grid: slide inference fuses on the pixel grid anyway, so this
    # matters for whole-image inference and for training on a chain that
    # reaches 2.0 (scale 2's prediction is not resized down to 1.0's grid).
    test_cfg=dict(
        mode='slide',
        crop_size=(1024, 1024),
        stride=(768, 768),
        scales=[0.5, 1.0, 2.0],
        fusion_grid='finest'))
