# Step 2 of the staged workflow on the demo data, as `make demo` runs it: the
# study's attn-finest-whole (docs/study.md), the staged recipe that also
# beats the best single scale of a converged single-scale model. It is
# hmsa_mnv2_attn-finest_demo.py with the attention branch trained on whole
# images at the size they are tested at: the single-scale model's random
# resize (0.5 to 2) is left out. Resized up to twice its size, an image shows
# the branch objects that scale 0.5 segments well; at the test size scale 0.5
# is the worst, and a branch trained so learns to give it less weight.
_base_ = ['./hmsa_mnv2_attn-finest_demo.py']

train_dataloader = dict(
    dataset=dict(pipeline=[
        *_base_.train_pipeline[:2],
        dict(_base_.train_pipeline[2], ratio_range=(1.0, 1.0)),
        *_base_.train_pipeline[3:],
    ]))
