# Ablation: average the per-scale logits instead of the attention fusion
# (the classic multi-scale baseline; same model and checkpoint).
_base_ = ['../hmsa_mnv2.py']
model = dict(test_cfg=dict(fusion='mean'))
