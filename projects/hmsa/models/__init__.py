"""HMSA models: the segmentors, the decode heads and the fusion rules."""
from .attention_branch import AttentionBranch, add_attention_branch
from .fusion import (
                     FUSION_RULES,
                     ScaleOutput,
                     explicit_fuse,
                     fuse,
                     hierarchical_fuse,
                     max_fuse,
                     mean_fuse,
)
from .hmsa_aspp_head import HMSAASPPHead
from .hmsa_cascade_encoder_decoder import (
                     CascadeScaleOutput,
                     HMSACascadeEncoderDecoder,
)
from .hmsa_encoder_decoder import HMSAEncoderDecoder
from .hmsa_sep_aspp_head import HMSASepASPPHead
from .mscale_v3plus_head import MscaleV3PlusHead
from .settings import check_scales

#: Segmentor type -> its HMSA version.
HMSA_SEGMENTOR_TYPES = {
    'EncoderDecoder': 'HMSAEncoderDecoder',
    'CascadeEncoderDecoder': 'HMSACascadeEncoderDecoder',
}

__all__ = [
    'AttentionBranch', 'add_attention_branch', 'CascadeScaleOutput',
    'FUSION_RULES', 'ScaleOutput', 'explicit_fuse', 'fuse',
    'hierarchical_fuse', 'max_fuse', 'mean_fuse', 'HMSAASPPHead',
    'HMSACascadeEncoderDecoder', 'HMSAEncoderDecoder', 'check_scales',
    'HMSA_SEGMENTOR_TYPES', 'HMSASepASPPHead', 'MscaleV3PlusHead'
]
