# Ablation: per-pixel maximum of the per-scale logits instead of the
# attention fusion (same model and checkpoint).
_base_ = ['../hmsa_mnv2.py']
model = dict(test_cfg=dict(fusion='max'))
