# Ablation: infer at 0.25, 0.5, 1.0 and 2.0 (the chain extends to scales
# never seen in training).
_base_ = ['../hmsa_mnv2.py']
model = dict(test_cfg=dict(scales=[0.25, 0.5, 1.0, 2.0]))
