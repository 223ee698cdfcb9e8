"""FPN neck (``image_encoder.neck``).

Shapes (d = d_model):
  input   the trunk's four maps [B, C_s, S/4/2**s, S/4/2**s], s = 0..3
  output  four maps [B, d, S/4/2**s, S/4/2**s]; levels in ``fpn_top_down_levels`` also receive
          the nearest-upsampled (x2) output of the level below them (lower resolution).
The image encoder then discards the ``scalp`` lowest-resolution levels (SAM 2.1: scalp 1, so the
image path uses strides 4, 8 and 16).

The official neck also computes a sine positional encoding of every level; the image path never
uses it (the mask decoder takes the prompt encoder's dense positional encoding), and it has no
parameters, so it is left out: the state-dict keys are the same.
"""

from typing import List

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class FpnNeck(nn.Module):
    """1x1 lateral convolutions (keys ``convs.{j}.conv``; j = 0 is the lowest resolution) and a
    top-down path with nearest-neighbour upsampling."""

    def __init__(self, d_model: int, backbone_channel_list: List[int], top_down: List[int]):
        super().__init__()
        self.convs = nn.ModuleList()
        for dim in backbone_channel_list:
            level = nn.Sequential()
            level.add_module("conv", nn.Conv2d(dim, d_model, kernel_size=1))
            self.convs.append(level)
        self.fpn_top_down_levels: List[int] = [int(i) for i in top_down]
        self.n = len(backbone_channel_list) - 1

    def forward(self, xs: List[Tensor]) -> List[Tensor]:
        """The FPN maps, highest resolution first."""
        out: List[Tensor] = []
        prev = torch.zeros(0)
        # top-down: from the lowest resolution (last) to the highest (first)
        for j, conv in enumerate(self.convs):
            i = self.n - j
            lateral = conv(xs[i])
            if j > 0 and i in self.fpn_top_down_levels:
                up = F.interpolate(prev.to(torch.float32), scale_factor=2.0, mode="nearest")
                prev = lateral + up.to(lateral.dtype)
            else:
                prev = lateral
            out.append(prev)
        out.reverse()
        return out
