"""Prompt encoder (``sam_prompt_encoder``): points, box corners and an optional mask input.

Labels: 1 positive point, 0 negative point, 2 box top-left, 3 box bottom-right, -1 padding
(not-a-point).  Coordinates are model-input pixels (x, y) in [0, S].

Shapes (d = embedding width, e = S/16):
  points [N, P, 2] float, labels [N, P] int  ->  sparse [N, P + 1, d]  (one padding point is
      always appended, as the SAM 2 image path does: it never passes boxes separately)
  mask input [N, 1, 4e, 4e] logits            ->  dense [N, d, e, e]
  no mask                                      ->  dense = ``no_mask_embed`` broadcast
  ``get_dense_pe()``                           ->  [1, d, e, e]
"""

import math
from typing import Optional, Tuple

import torch
from torch import Tensor, nn

from .layers import LayerNorm2d


class PositionEmbeddingRandom(nn.Module):
    """Random-Fourier-feature encoding of [0, 1]^2 coordinates: ``[..., 2] -> [..., 2F]``.
    Buffer ``positional_encoding_gaussian_matrix`` [2, F] (saved in checkpoints)."""

    def __init__(self, num_pos_feats: int) -> None:
        super().__init__()
        self.register_buffer("positional_encoding_gaussian_matrix", torch.randn((2, num_pos_feats)))

    def _pe_encoding(self, coords: Tensor) -> Tensor:
        """fp32 ``[..., 2]`` -> ``[..., 2F]`` in the module's dtype; computed in fp32 because
        bf16 would shift the sines' phases by up to a few hundredths of a radian."""
        matrix = self.positional_encoding_gaussian_matrix
        coords = (2 * coords - 1) @ matrix.to(torch.float32)
        coords = 2 * math.pi * coords
        return torch.cat([torch.sin(coords), torch.cos(coords)], dim=-1).to(matrix.dtype)

    def grid(self, h: int, w: int) -> Tensor:
        """Encoding of the pixel centres of an ``h x w`` grid: ``[2F, h, w]``."""
        dev = self.positional_encoding_gaussian_matrix.device
        ys = (torch.arange(h, dtype=torch.float32, device=dev) + 0.5) / h
        xs = (torch.arange(w, dtype=torch.float32, device=dev) + 0.5) / w
        xy = torch.stack([xs[None, :].expand(h, w), ys[:, None].expand(h, w)], dim=-1)
        return self._pe_encoding(xy).permute(2, 0, 1)

    def forward_with_coords(self, coords: Tensor, image_h: int, image_w: int) -> Tensor:
        """Pixel coordinates ``[N, P, 2]`` (x, y) -> ``[N, P, 2F]``."""
        norm = torch.stack([coords[..., 0] / image_w, coords[..., 1] / image_h], dim=-1)
        return self._pe_encoding(norm.to(torch.float32))


class PromptEncoder(nn.Module):
    """Keys: ``pe_layer``, ``point_embeddings.{0..3}``, ``not_a_point_embed``,
    ``mask_downscaling.{0,1,3,4,6}``, ``no_mask_embed``."""

    def __init__(self, embed_dim: int, image_size: int, mask_in_chans: int) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.input_image_size = image_size
        self.image_embedding_size = image_size // 16
        self.pe_layer = PositionEmbeddingRandom(embed_dim // 2)
        self.point_embeddings = nn.ModuleList([nn.Embedding(1, embed_dim) for _ in range(4)])
        self.not_a_point_embed = nn.Embedding(1, embed_dim)
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, mask_in_chans // 4, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans // 4),
            nn.GELU(),
            nn.Conv2d(mask_in_chans // 4, mask_in_chans, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans),
            nn.GELU(),
            nn.Conv2d(mask_in_chans, embed_dim, kernel_size=1),
        )
        self.no_mask_embed = nn.Embedding(1, embed_dim)

    def get_dense_pe(self) -> Tensor:
        e = self.image_embedding_size
        return self.pe_layer.grid(e, e).unsqueeze(0)

    def embed_points(self, points: Tensor, labels: Tensor) -> Tensor:
        """``[N, P, 2]``, ``[N, P]`` -> ``[N, P + 1, d]`` (a padding point is appended)."""
        n = points.shape[0]
        points = points.to(torch.float32) + 0.5  # pixel centres
        points = torch.cat([points, torch.zeros((n, 1, 2), device=points.device)], dim=1)
        labels = torch.cat(
            [labels.to(torch.int64), -torch.ones((n, 1), dtype=torch.int64, device=labels.device)],
            dim=1,
        )
        emb = self.pe_layer.forward_with_coords(
            points, self.input_image_size, self.input_image_size
        )
        lab = labels.unsqueeze(-1)
        emb = torch.where(lab == -1, torch.zeros_like(emb) + self.not_a_point_embed.weight, emb)
        for i, point_embedding in enumerate(self.point_embeddings):
            emb = torch.where(lab == i, emb + point_embedding.weight, emb)
        return emb

    def forward(
        self, points: Tensor, labels: Tensor, masks: Optional[Tensor]
    ) -> Tuple[Tensor, Tensor]:
        """``(sparse [N, P + 1, d], dense [N, d, e, e])``, in the module's dtype (mask logits of
        any floating dtype are cast to it)."""
        sparse = self.embed_points(points, labels)
        if masks is not None:
            dense = self.mask_downscaling(masks.to(self.no_mask_embed.weight.dtype))
        else:
            e = self.image_embedding_size
            dense = self.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(
                points.shape[0], -1, e, e
            )
        return sparse, dense
