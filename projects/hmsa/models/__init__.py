"""HMSA models: the segmentor, the decode heads and the fusion rules."""
from .attention_branch import AttentionBranch
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
from .hmsa_encoder_decoder import HMSAEncoderDecoder
from .hmsa_sep_aspp_head import HMSASepASPPHead
from .mscale_v3plus_head import MscaleV3PlusHead
from .settings import check_scales

__all__ = [
    'AttentionBranch', 'FUSION_RULES', 'ScaleOutput', 'explicit_fuse', 'fuse',
    'hierarchical_fuse', 'max_fuse', 'mean_fuse',
    'HMSAASPPHead', 'HMSAEncoderDecoder', 'check_scales', 'HMSASepASPPHead',
    'MscaleV3PlusHead'
]
