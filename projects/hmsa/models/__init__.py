"""HMSA models: the segmentor, the decode heads and the fusion rules."""
from .attention_branch import AttentionBranch
from .fusion import (
                     FUSION_RULES,
                     ScaleOutput,
                     explicit_fuse,
                     fuse,
                     fuse_two_scales,
                     hierarchical_fuse,
                     max_fuse,
                     mean_fuse,
)
from .hmsa_aspp_head import HMSAASPPHead
from .hmsa_encoder_decoder import HMSAEncoderDecoder, check_scales
from .hmsa_sep_aspp_head import HMSASepASPPHead

__all__ = [
    'AttentionBranch', 'FUSION_RULES', 'ScaleOutput', 'explicit_fuse', 'fuse',
    'fuse_two_scales', 'hierarchical_fuse', 'max_fuse', 'mean_fuse',
    'HMSAASPPHead', 'HMSAEncoderDecoder', 'check_scales', 'HMSASepASPPHead'
]
