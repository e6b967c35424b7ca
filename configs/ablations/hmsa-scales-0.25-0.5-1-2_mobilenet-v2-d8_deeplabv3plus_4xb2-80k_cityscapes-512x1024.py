# Ablation: infer at 0.25, 0.5, 1.0 and 2.0 (the chain extends to scales
# never seen in training).
_base_ = ['../hmsa/hmsa_mobilenet-v2-d8_deeplabv3plus_4xb2-80k_cityscapes-512x1024.py']
model = dict(test_cfg=dict(scales=[0.25, 0.5, 1.0, 2.0]))
