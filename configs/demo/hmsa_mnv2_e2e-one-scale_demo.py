# One end-to-end run on the demo data in which the fusion beats the
# network's own scales: the study's e2e-one-scale (docs/study.md). It is
# hmsa_mnv2_e2e_demo.py with the network (all but the attention branch)
# trained at scale 1 only, as the single-scale model was, on its randomly
# resized crops: scales 0.5 and 2 run without autograd and in eval mode, as
# at test time, and the fused loss trains the branch alone
# (train_cfg.trunk_scale; its own loss at the single-scale model's weight).
#
# Measured (three seeds, from the 120-iteration single-scale models): every
# scale rises and attention over 0.5, 1, 2 is above the network's best
# single scale on every seed (+0.96 on the validation images, +1.33 on 64
# held-out ones), but the network is about 2 mIoU below what
# hmsa_mnv2_e2e_demo.py's recipe trained on whole images gives.
# Its branch fitted again on whole images afterwards, attention only, wins
# by the study's rule: hmsa_mnv2_e2e-one-scale-refit_demo.py.
_base_ = ['./hmsa_mnv2_e2e_demo.py']

model = dict(train_cfg=dict(trunk_scale=1.0, scale_loss_weight=1))
