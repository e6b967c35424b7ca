# Ablation: no supervised loss on each scale's own prediction; only the
# fused prediction is supervised.
_base_ = ['../hmsa_mnv2.py']
model = dict(train_cfg=dict(scale_loss_weight=0))
