# Ablation: no supervised loss on each scale's own prediction; only the
# fused prediction is supervised.
_base_ = ['../hmsa/hmsa_mobilenet-v2-d8_deeplabv3plus_4xb2-80k_cityscapes-512x1024.py']
model = dict(train_cfg=dict(scale_loss_weight=0))
