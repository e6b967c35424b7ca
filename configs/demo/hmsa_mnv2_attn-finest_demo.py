# Step 2 of the staged workflow on the demo data as the study's recipe
# attn-finest (docs/study.md); `make demo` runs hmsa_mnv2_attn-whole_demo.py,
# this recipe trained on whole images. It is
# hmsa_mnv2_attn-only_demo.py (attention only, the branch reads each scale's
# own and the higher scales' probabilities, trained on the chain 0.5, 1, 2)
# with the scales fused on the highest scale's grid: every lower scale is
# resized up to scale 2's output grid, so scale 2's prediction is never
# resized down to scale 1's and keeps the thin structures only it resolves.
# Training fuses the same way.
_base_ = ['./hmsa_mnv2_attn-only_demo.py']

model = dict(test_cfg=dict(fusion_grid='finest'))
