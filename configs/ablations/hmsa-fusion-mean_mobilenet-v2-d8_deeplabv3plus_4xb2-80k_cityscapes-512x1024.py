# Ablation: average the per-scale logits instead of the attention fusion
# (the classic multi-scale baseline; same model and checkpoint).
_base_ = ['../hmsa/hmsa_mobilenet-v2-d8_deeplabv3plus_4xb2-80k_cityscapes-512x1024.py']
model = dict(test_cfg=dict(fusion='mean'))
