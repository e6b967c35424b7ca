# Staged workflow, step 2, with the staged recipe the demo study recommends
# (docs/study.md, attn-finest-whole; what `make demo` trains): the -higher
# branch trained on images at the size they are tested at. The single-scale
# model's random resize (0.5 to 2) is left out, so the branch sees objects at
# the sizes it will weigh them at; the 512x1024 crop stays, so memory is that
# of the -higher config. The scales are fused on the highest scale's grid, as
# every Cityscapes HMSA config does. Not yet measured on Cityscapes.
_base_ = ['./hmsa-attn-only-higher_deeplabv3plus_r50-d8_4xb2-8k_cityscapes-512x1024.py']

train_dataloader = dict(
    dataset=dict(pipeline=[
        *_base_.train_pipeline[:2],
        dict(_base_.train_pipeline[2], ratio_range=(1.0, 1.0)),
        *_base_.train_pipeline[3:],
    ]))
