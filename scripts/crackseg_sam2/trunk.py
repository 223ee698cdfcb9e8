"""Hiera trunk (``image_encoder.trunk``): patch embedding, windowed positional embedding with a
background embedding, multi-scale blocks with windowed or global attention, and query pooling
at the first block of every pooled stage.

Shapes (S = model input side, E = embed_dim, C_s = E * dim_mul**s):
  input           [B, 3, S, S]
  patch_embed     [B, S/4, S/4, E]          (channels-last inside the trunk)
  stage s output  [B, C_s, S/2**(s+2), S/2**(s+2)]  for s = 0..3 (strides 4, 8, 16, 32)
"""

from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import MLP, Linear, attention


class PatchEmbed(nn.Module):
    """7x7 stride-4 convolution (key ``proj``): ``[B, 3, H, W] -> [B, H/4, W/4, E]``."""

    def __init__(self, embed_dim: int, in_chans: int = 3) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=7, stride=4, padding=3)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x).permute(0, 2, 3, 1)


def window_partition(x: Tensor, window: int) -> Tuple[Tensor, int, int]:
    """``[B, H, W, C] -> [B * nWin, window, window, C]`` (zero-padded to a multiple of window),
    plus the padded height and width."""
    b, h, w, c = x.shape
    pad_h = (window - h % window) % window
    pad_w = (window - w % window) % window
    if pad_h > 0 or pad_w > 0:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    hp = h + pad_h
    wp = w + pad_w
    x = x.view(b, hp // window, window, wp // window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window, window, c), hp, wp


def window_unpartition(x: Tensor, window: int, hp: int, wp: int, h: int, w: int) -> Tensor:
    """Inverse of :func:`window_partition`: ``[B * nWin, window, window, C] -> [B, h, w, C]``."""
    b = x.shape[0] // ((hp // window) * (wp // window))
    x = x.reshape(b, hp // window, wp // window, window, window, -1)
    x = x.permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, -1)
    if hp > h or wp > w:
        x = x[:, :h, :w, :]
    return x


def pool_hw(x: Tensor, stride: int) -> Tensor:
    """Max-pool a channels-last map: ``[B, H, W, C] -> [B, H/stride, W/stride, C]``."""
    x = F.max_pool2d(x.permute(0, 3, 1, 2), kernel_size=stride, stride=stride)
    return x.permute(0, 2, 3, 1)


class MultiScaleAttention(nn.Module):
    """Self-attention over a (window of a) channels-last map, with optional query pooling.

    Keys ``qkv`` (dim -> 3*dim_out) and ``proj`` (dim_out -> dim_out).
    ``[B, H, W, dim] -> [B, H/q_stride, W/q_stride, dim_out]`` (q_stride 1 when not pooling).
    """

    def __init__(self, dim: int, dim_out: int, num_heads: int, q_stride: int) -> None:
        super().__init__()
        self.dim_out = dim_out
        self.num_heads = num_heads
        self.q_stride = q_stride
        self.qkv = Linear(dim, dim_out * 3)
        self.proj = Linear(dim_out, dim_out)

    def forward(self, x: Tensor) -> Tensor:
        b, h, w, _ = x.shape
        qkv = self.qkv(x).reshape(b, h * w, 3, self.num_heads, -1)
        q, k, v = qkv.unbind(2)  # each [B, HW, heads, d]
        if self.q_stride > 1:
            q = pool_hw(q.reshape(b, h, w, -1), self.q_stride)
            h = q.shape[1]
            w = q.shape[2]
            q = q.reshape(b, h * w, self.num_heads, -1)
        out = attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        out = out.transpose(1, 2).reshape(b, h, w, -1)
        return self.proj(out)

    @torch.jit.export
    def set_lora_merged(self, merged: bool) -> None:
        self.qkv.set_lora_merged(merged)
        self.proj.set_lora_merged(merged)


class MultiScaleBlock(nn.Module):
    """Pre-norm transformer block (keys ``norm1``, ``attn``, ``norm2``, ``mlp``, and ``proj``
    when the width changes).  ``window_size`` 0 means global attention.  When ``q_stride`` > 1
    the block halves the resolution (query pooling, pooled shortcut)."""

    def __init__(
        self,
        dim: int,
        dim_out: int,
        num_heads: int,
        mlp_ratio: float,
        q_stride: int,
        window_size: int,
    ) -> None:
        super().__init__()
        self.dim = dim
        self.dim_out = dim_out
        self.window_size = window_size
        self.q_stride = q_stride
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = MultiScaleAttention(dim, dim_out, num_heads, q_stride)
        self.norm2 = nn.LayerNorm(dim_out, eps=1e-6)
        self.mlp = MLP(dim_out, int(dim_out * mlp_ratio), dim_out, 2, activation="gelu")
        self.has_proj = dim != dim_out
        # Identity has no parameters, so the state dict matches the official one either way.
        self.proj = nn.Linear(dim, dim_out) if self.has_proj else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x  # [B, H, W, dim]
        x = self.norm1(x)
        if self.has_proj:
            shortcut = self.proj(x)
            if self.q_stride > 1:
                shortcut = pool_hw(shortcut, self.q_stride)

        window = self.window_size
        h = x.shape[1]
        w = x.shape[2]
        hp = h
        wp = w
        if window > 0:
            x, hp, wp = window_partition(x, window)

        x = self.attn(x)
        if self.q_stride > 1:
            # the attention pooled the queries: windows and map are q_stride times smaller
            window = self.window_size // self.q_stride
            h = shortcut.shape[1]
            w = shortcut.shape[2]
            if window > 0:
                hp = h + (window - h % window) % window
                wp = w + (window - w % window) % window

        if self.window_size > 0:
            x = window_unpartition(x, window, hp, wp, h, w)

        x = shortcut + x
        return x + self.mlp(self.norm2(x))

    @torch.jit.export
    def set_lora_merged(self, merged: bool) -> None:
        self.attn.set_lora_merged(merged)
        self.mlp.set_lora_merged(merged)


class Hiera(nn.Module):
    """The hierarchical trunk.  Keys: ``patch_embed``, ``pos_embed`` [1, E, bkg, bkg],
    ``pos_embed_window`` [1, E, w0, w0], ``blocks.{i}``.

    ``forward``: ``[B, 3, S, S]`` -> list of the four stage outputs, highest resolution first.
    """

    def __init__(self, cfg: dict) -> None:
        super().__init__()
        embed_dim = int(cfg["embed_dim"])
        num_heads = int(cfg["num_heads"])
        stages = [int(s) for s in cfg["stages"]]
        window_spec = [int(s) for s in cfg["window_spec"]]
        global_blocks = [int(s) for s in cfg["global_att_blocks"]]
        q_stride = int(cfg["q_stride"][0])
        assert cfg["q_stride"][0] == cfg["q_stride"][1], "square query strides only"
        assert len(stages) == len(window_spec)

        self.stage_ends: List[int] = [sum(stages[: i + 1]) - 1 for i in range(len(stages))]
        q_pool_blocks = [e + 1 for e in self.stage_ends[:-1]][: int(cfg["q_pool"])]

        self.patch_embed = PatchEmbed(embed_dim)
        bkg = [int(s) for s in cfg["window_pos_embed_bkg_spatial_size"]]
        self.pos_embed = nn.Parameter(torch.zeros(1, embed_dim, bkg[0], bkg[1]))
        self.pos_embed_window = nn.Parameter(
            torch.zeros(1, embed_dim, window_spec[0], window_spec[0])
        )

        blocks = []
        stage = 0
        for i in range(sum(stages)):
            dim_out = embed_dim
            # The window size lags by one block: the first block of a stage still uses the
            # previous stage's window (it is the block that pools down into this stage).
            window = 0 if i in global_blocks else window_spec[stage]
            if i - 1 in self.stage_ends:
                dim_out = int(embed_dim * cfg["dim_mul"])
                num_heads = int(num_heads * cfg["head_mul"])
                stage += 1
            blocks.append(
                MultiScaleBlock(
                    embed_dim,
                    dim_out,
                    num_heads,
                    float(cfg["mlp_ratio"]),
                    q_stride if i in q_pool_blocks else 1,
                    window,
                )
            )
            embed_dim = dim_out
        self.blocks = nn.ModuleList(blocks)

    def _get_pos_embed(self, h: int, w: int) -> Tensor:
        """Background embedding resized (bicubic) to ``h x w`` plus the window embedding tiled
        over it: ``[1, h, w, E]``."""
        pos = F.interpolate(self.pos_embed, size=(h, w), mode="bicubic", align_corners=False)
        win = self.pos_embed_window
        pos = pos + win.tile([1, 1, h // win.shape[2], w // win.shape[3]])
        return pos.permute(0, 2, 3, 1)

    def forward(self, x: Tensor) -> List[Tensor]:
        x = self.patch_embed(x)
        x = x + self._get_pos_embed(x.shape[1], x.shape[2])
        outputs: List[Tensor] = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.stage_ends:
                outputs.append(x.permute(0, 3, 1, 2))
        return outputs

    @torch.jit.export
    def set_lora_merged(self, merged: bool) -> None:
        for block in self.blocks:
            block.set_lora_merged(merged)
