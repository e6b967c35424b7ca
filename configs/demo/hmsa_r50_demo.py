# hmsa_mnv2_demo.py on MMSeg's ResNet-50-D8 trunk: the HMSA model trained
# from scratch on the demo data.
_base_ = ['./hmsa_mnv2_demo.py', '../_base_/models/resnet50-d8.py']

model = _base_.resnet50_d8_demo
