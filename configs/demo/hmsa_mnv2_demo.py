# HMSA MobileNetV2-D8 DeepLabV3+ on the demo data: the single-scale demo
# config with what HMSA changes (as configs/hmsa/ does for Cityscapes),
# trained from scratch. Inference chains 0.5, 1.0 and 2.0 on whole images:
# a 128x256 image is small enough at scale 2.
_base_ = ['./mnv2_single-scale_demo.py']

model = dict(
    type='HMSAEncoderDecoder',
    decode_head=dict(type='HMSASepASPPHead'),
    test_cfg=dict(scales=[0.5, 1.0, 2.0]))
