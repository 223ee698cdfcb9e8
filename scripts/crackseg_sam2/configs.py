"""Model configurations: plain data, one dict per model, in one place.

The four ``sam2.1_hiera_*`` entries reproduce the image-path shapes of the official SAM 2.1
configurations (``sam2/configs/sam2.1/sam2.1_hiera_{t,s,b+,l}.yaml`` plus the SAM heads that
``SAM2Base`` builds with fixed sizes).  ``test`` is a narrow, 256 px model for fast CPU tests;
it has no official counterpart.

Fields
------
image_size            model input side S (pixels); embeddings are S/16, masks S/4
trunk.embed_dim       channels after patch embedding (stage 1)
trunk.num_heads       attention heads in stage 1 (doubled at each stage change)
trunk.stages          blocks per stage
trunk.global_att_blocks  block indices with global (unwindowed) attention
trunk.window_spec     window side per stage
trunk.window_pos_embed_bkg_spatial_size  side of the background positional embedding
trunk.q_pool          number of stage changes with query pooling
trunk.q_stride        pooling stride at those changes
trunk.dim_mul / head_mul  channel / head multipliers at a stage change
trunk.mlp_ratio       hidden width of the block MLPs relative to the block width
neck.d_model          FPN width = prompt embedding width = transformer width
neck.fpn_top_down_levels  levels that receive top-down features
neck.scalp            lowest-resolution levels discarded after the neck
decoder.*             two-way transformer and mask-decoder sizes
prompt.mask_in_chans  hidden channels of the mask-input downscaler
"""

from __future__ import annotations

import copy
from typing import Any, Dict

_DECODER_SAM21: Dict[str, Any] = {
    "transformer_depth": 2,
    "transformer_heads": 8,
    "transformer_mlp_dim": 2048,
    "attention_downsample_rate": 2,
    "num_multimask_outputs": 3,
    "iou_head_depth": 3,
    "iou_head_hidden_dim": 256,
    "dynamic_multimask_stability_delta": 0.05,
    "dynamic_multimask_stability_thresh": 0.98,
}

_NECK_SAM21: Dict[str, Any] = {"d_model": 256, "fpn_top_down_levels": [2, 3], "scalp": 1}


def _trunk(embed_dim, num_heads, stages, global_att_blocks, window_spec, bkg):
    return {
        "embed_dim": embed_dim,
        "num_heads": num_heads,
        "stages": stages,
        "global_att_blocks": global_att_blocks,
        "window_spec": window_spec,
        "window_pos_embed_bkg_spatial_size": bkg,
        "q_pool": 3,
        "q_stride": [2, 2],
        "dim_mul": 2.0,
        "head_mul": 2.0,
        "mlp_ratio": 4.0,
    }


def _sam21(trunk: Dict[str, Any]) -> Dict[str, Any]:
    return {
        "image_size": 1024,
        "trunk": trunk,
        "neck": copy.deepcopy(_NECK_SAM21),
        "prompt": {"mask_in_chans": 16},
        "decoder": copy.deepcopy(_DECODER_SAM21),
    }


CONFIGS: Dict[str, Dict[str, Any]] = {
    # sam2.1_hiera_t.yaml
    "tiny": _sam21(_trunk(96, 1, [1, 2, 7, 2], [5, 7, 9], [8, 4, 14, 7], [7, 7])),
    # sam2.1_hiera_s.yaml
    "small": _sam21(_trunk(96, 1, [1, 2, 11, 2], [7, 10, 13], [8, 4, 14, 7], [7, 7])),
    # sam2.1_hiera_b+.yaml (Hiera defaults for everything but width and heads)
    "base_plus": _sam21(_trunk(112, 2, [2, 3, 16, 3], [12, 16, 20], [8, 4, 14, 7], [14, 14])),
    # sam2.1_hiera_l.yaml
    "large": _sam21(_trunk(144, 2, [2, 6, 36, 4], [23, 33, 43], [8, 4, 16, 8], [7, 7])),
    # Not an official model: narrow and shallow, for tests on CPU.
    "test": {
        "image_size": 256,
        "trunk": {
            **_trunk(16, 1, [1, 1, 2, 1], [3], [8, 4, 4, 2], [4, 4]),
        },
        "neck": {"d_model": 64, "fpn_top_down_levels": [2, 3], "scalp": 1},
        "prompt": {"mask_in_chans": 16},
        "decoder": {
            **_DECODER_SAM21,
            "transformer_heads": 4,
            "transformer_mlp_dim": 128,
            "iou_head_hidden_dim": 64,
        },
    },
}

#: Official checkpoint file name for each official configuration.
CHECKPOINT_FILES: Dict[str, str] = {
    "tiny": "sam2.1_hiera_tiny.pt",
    "small": "sam2.1_hiera_small.pt",
    "base_plus": "sam2.1_hiera_base_plus.pt",
    "large": "sam2.1_hiera_large.pt",
}


def get_config(name: str) -> Dict[str, Any]:
    """A deep copy of the named configuration; ValueError naming the known ones otherwise."""
    if name not in CONFIGS:
        raise ValueError(f"unknown config {name!r}; known: {', '.join(CONFIGS)}")
    return copy.deepcopy(CONFIGS[name])


def trunk_channels(cfg: Dict[str, Any]) -> list:
    """Channels at the end of each trunk stage, first (stride 4) to last (stride 32)."""
    t = cfg["trunk"]
    dims = []
    dim = t["embed_dim"]
    for s in range(len(t["stages"])):
        if s > 0:
            dim = int(dim * t["dim_mul"])
        dims.append(dim)
    return dims
