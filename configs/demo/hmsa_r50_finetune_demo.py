# hmsa_mnv2_finetune_demo.py on MMSeg's ResNet-50-D8 trunk: every weight of
# the HMSA model trained from the checkpoint of r50_single-scale_demo.py.
_base_ = ['./hmsa_mnv2_finetune_demo.py', '../_base_/models/resnet50-d8.py']

load_from = 'work_dirs/demo_r50/single_scale/iter_120.pth'
model = _base_.resnet50_d8_demo
