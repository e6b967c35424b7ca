# The paper's model: hierarchical multi-scale attention on HRNetV2-W48 OCRNet,
# Cityscapes 512x1024 crops, 4 GPUs x 2 images, 80k iterations. Model and
# schedule are MMSeg's OCRNet HRNet-W48 config; what follows is what HMSA
# changes.
_base_ = ['mmseg::ocrnet/ocrnet_hr48_4xb2-80k_cityscapes-512x1024.py']
custom_imports = dict(imports=['projects.hmsa'], allow_failed_imports=False)

model = dict(
    # MMSeg's cascade (soft object regions -> OCR head) run at several
    # scales; every parameter keeps MMSeg's name, so a single-scale OCRNet
    # checkpoint loads and only decode_head.1.attention is new.
    type='HMSACascadeEncoderDecoder',
    # The paper's attention branch on the OCR head's features (the input of
    # its classifier): two 3x3 convs of 256 channels with BN and ReLU, a 1x1
    # conv to one channel without bias, a sigmoid.
    attention_cfg=dict(type='paper', channels=256, num_convs=2, bias=False),
    # Train on the 1.0 crop and its 0.5 copy, fused by attention; the soft
    # region logits are fused with the same attention and keep their head's
    # loss weight (0.4); 0.05 x each scale's own loss, as in the paper.
    train_cfg=dict(lo_scale=0.5, attention_only=False, scale_loss_weight=0.05),
    # Infer at 0.5, 1.0 and 2.0 and chain the pairwise attention fusion.
    # A full 1024x2048 image is 2048x4096 at scale 2: windows of 1024x1024
    # keep the memory of one forward pass bounded.
    test_cfg=dict(
        mode='slide',
        crop_size=(1024, 1024),
        stride=(768, 768),
        scales=[0.5, 1.0, 2.0],
        fusion='attention',
        flip=False,
        return_scales=False))
