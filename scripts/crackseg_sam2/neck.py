"""FPN neck (``image_encoder.neck``) and the sine positional encoding of its outputs.

Shapes (d = d_model):
  input   the trunk's four maps [B, C_s, S/4/2**s, S/4/2**s], s = 0..3
  output  four maps [B, d, S/4/2**s, S/4/2**s]; levels in ``fpn_top_down_levels`` also receive
          the nearest-upsampled (x2) output of the level below them (lower resolution).
The image encoder then discards the ``scalp`` lowest-resolution levels (SAM 2.1: scalp 1, so the
image path uses strides 4, 8 and 16).
"""

import math
from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class PositionEmbeddingSine(nn.Module):
    """Normalised 2-D sine/cosine encoding, ``[B, C, H, W] -> [B, num_pos_feats, H, W]``
    (first half encodes y, second half x).  No parameters."""

    def __init__(self, num_pos_feats: int, temperature: float = 10000.0) -> None:
        super().__init__()
        assert num_pos_feats % 2 == 0
        self.half = num_pos_feats // 2
        self.temperature = temperature
        self.scale = 2 * math.pi

    def forward(self, x: Tensor) -> Tensor:
        b = x.shape[0]
        h = x.shape[2]
        w = x.shape[3]
        eps = 1e-6
        ys = torch.arange(1, h + 1, dtype=torch.float32, device=x.device)
        xs = torch.arange(1, w + 1, dtype=torch.float32, device=x.device)
        ys = ys / (float(h) + eps) * self.scale
        xs = xs / (float(w) + eps) * self.scale
        idx = torch.arange(self.half, dtype=torch.float32, device=x.device)
        freq = torch.pow(
            torch.tensor(self.temperature, device=x.device),
            2 * torch.div(idx, 2, rounding_mode="floor") / self.half,
        )
        py = ys[:, None] / freq  # [H, half]
        px = xs[:, None] / freq  # [W, half]
        py = torch.stack((py[:, 0::2].sin(), py[:, 1::2].cos()), dim=2).flatten(1)
        px = torch.stack((px[:, 0::2].sin(), px[:, 1::2].cos()), dim=2).flatten(1)
        pos = torch.cat(
            (py[:, None, :].expand(h, w, self.half), px[None, :, :].expand(h, w, self.half)),
            dim=2,
        )
        return pos.permute(2, 0, 1).unsqueeze(0).expand(b, -1, -1, -1).to(x.dtype)


class FpnNeck(nn.Module):
    """1x1 lateral convolutions (keys ``convs.{j}.conv``; j = 0 is the lowest resolution) and a
    top-down path with nearest-neighbour upsampling."""

    def __init__(self, d_model: int, backbone_channel_list: List[int], top_down: List[int]):
        super().__init__()
        self.position_encoding = PositionEmbeddingSine(d_model)
        self.convs = nn.ModuleList()
        for dim in backbone_channel_list:
            level = nn.Sequential()
            level.add_module("conv", nn.Conv2d(dim, d_model, kernel_size=1))
            self.convs.append(level)
        self.fpn_top_down_levels: List[int] = [int(i) for i in top_down]
        self.n = len(backbone_channel_list) - 1

    def forward_features(self, xs: List[Tensor]) -> List[Tensor]:
        """The FPN maps, highest resolution first (no positional encoding)."""
        out: List[Tensor] = []
        prev = torch.zeros(0)
        # top-down: from the lowest resolution (last) to the highest (first)
        for j, conv in enumerate(self.convs):
            i = self.n - j
            lateral = conv(xs[i])
            if j > 0 and i in self.fpn_top_down_levels:
                up = F.interpolate(prev.to(torch.float32), scale_factor=2.0, mode="nearest")
                prev = lateral + up
            else:
                prev = lateral
            out.append(prev)
        out.reverse()
        return out

    def forward(self, xs: List[Tensor]) -> Tuple[List[Tensor], List[Tensor]]:
        """``(features, positional encodings)``, both highest resolution first."""
        feats = self.forward_features(xs)
        pos = [self.position_encoding(f) for f in feats]
        return feats, pos
