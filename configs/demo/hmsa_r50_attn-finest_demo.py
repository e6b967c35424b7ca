# The recommended staged recipe (study recipe attn-finest) on the
# ResNet-50-D8 trunk: attention only, fused on the highest scale's grid.
_base_ = ['./hmsa_r50_attn-only_demo.py']

model = dict(test_cfg=dict(fusion_grid='finest'))
