"""Two-way transformer of the mask decoder (``sam_mask_decoder.transformer``).

Tokens (prompt + output tokens) and image embeddings attend to each other: each layer runs token
self-attention, token->image cross-attention, a token MLP, and image->token cross-attention; a
final token->image attention follows the layers.

Shapes (N prompts, T tokens, d width, e = S/16):
  image [N, d, e, e], image_pe [N, d, e, e], tokens [N, T, d]
  -> (tokens [N, T, d], image [N, e*e, d])
"""

from typing import Tuple

import torch
from torch import Tensor, nn

from .layers import MLP, Linear, attention


class Attention(nn.Module):
    """Multi-head attention with projections to ``d / downsample_rate`` channels.
    Keys ``q_proj``, ``k_proj``, ``v_proj``, ``out_proj``."""

    def __init__(self, embedding_dim: int, num_heads: int, downsample_rate: int = 1) -> None:
        super().__init__()
        internal = embedding_dim // downsample_rate
        assert internal % num_heads == 0, "num_heads must divide the internal width"
        self.num_heads = num_heads
        self.q_proj = Linear(embedding_dim, internal)
        self.k_proj = Linear(embedding_dim, internal)
        self.v_proj = Linear(embedding_dim, internal)
        self.out_proj = Linear(internal, embedding_dim)

    def _heads(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        return x.reshape(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)

    def forward(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        q = self._heads(self.q_proj(q))
        k = self._heads(self.k_proj(k))
        v = self._heads(self.v_proj(v))
        out = attention(q, k, v)  # [B, heads, Nq, c]
        b, h, n, c = out.shape
        out = out.transpose(1, 2).reshape(b, n, h * c)
        return self.out_proj(out)

    @torch.jit.export
    def set_lora_merged(self, merged: bool) -> None:
        self.q_proj.set_lora_merged(merged)
        self.k_proj.set_lora_merged(merged)
        self.v_proj.set_lora_merged(merged)
        self.out_proj.set_lora_merged(merged)


class TwoWayAttentionBlock(nn.Module):
    """Keys ``self_attn``, ``norm1``, ``cross_attn_token_to_image``, ``norm2``, ``mlp``,
    ``norm3``, ``norm4``, ``cross_attn_image_to_token``."""

    def __init__(
        self,
        embedding_dim: int,
        num_heads: int,
        mlp_dim: int,
        attention_downsample_rate: int,
        skip_first_layer_pe: bool,
    ) -> None:
        super().__init__()
        self.self_attn = Attention(embedding_dim, num_heads)
        self.norm1 = nn.LayerNorm(embedding_dim)
        self.cross_attn_token_to_image = Attention(
            embedding_dim, num_heads, attention_downsample_rate
        )
        self.norm2 = nn.LayerNorm(embedding_dim)
        self.mlp = MLP(embedding_dim, mlp_dim, embedding_dim, 2, activation="relu")
        self.norm3 = nn.LayerNorm(embedding_dim)
        self.norm4 = nn.LayerNorm(embedding_dim)
        self.cross_attn_image_to_token = Attention(
            embedding_dim, num_heads, attention_downsample_rate
        )
        self.skip_first_layer_pe = skip_first_layer_pe

    def forward(
        self, queries: Tensor, keys: Tensor, query_pe: Tensor, key_pe: Tensor
    ) -> Tuple[Tensor, Tensor]:
        if self.skip_first_layer_pe:
            queries = self.self_attn(queries, queries, queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries)
        queries = self.norm1(queries)

        q = queries + query_pe
        k = keys + key_pe
        queries = self.norm2(queries + self.cross_attn_token_to_image(q, k, keys))

        queries = self.norm3(queries + self.mlp(queries))

        q = queries + query_pe
        k = keys + key_pe
        keys = self.norm4(keys + self.cross_attn_image_to_token(k, q, queries))
        return queries, keys

    @torch.jit.export
    def set_lora_merged(self, merged: bool) -> None:
        self.self_attn.set_lora_merged(merged)
        self.cross_attn_token_to_image.set_lora_merged(merged)
        self.mlp.set_lora_merged(merged)
        self.cross_attn_image_to_token.set_lora_merged(merged)


class TwoWayTransformer(nn.Module):
    """Keys ``layers.{i}``, ``final_attn_token_to_image``, ``norm_final_attn``."""

    def __init__(
        self,
        depth: int,
        embedding_dim: int,
        num_heads: int,
        mlp_dim: int,
        attention_downsample_rate: int = 2,
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            [
                TwoWayAttentionBlock(
                    embedding_dim, num_heads, mlp_dim, attention_downsample_rate, i == 0
                )
                for i in range(depth)
            ]
        )
        self.final_attn_token_to_image = Attention(
            embedding_dim, num_heads, attention_downsample_rate
        )
        self.norm_final_attn = nn.LayerNorm(embedding_dim)

    def forward(self, image: Tensor, image_pe: Tensor, tokens: Tensor) -> Tuple[Tensor, Tensor]:
        keys = image.flatten(2).permute(0, 2, 1)
        key_pe = image_pe.flatten(2).permute(0, 2, 1)
        queries = tokens
        for layer in self.layers:
            queries, keys = layer(queries, keys, tokens, key_pe)
        q = queries + tokens
        k = keys + key_pe
        queries = self.norm_final_attn(queries + self.final_attn_token_to_image(q, k, keys))
        return queries, keys

    @torch.jit.export
    def set_lora_merged(self, merged: bool) -> None:
        for layer in self.layers:
            layer.set_lora_merged(merged)
        self.final_attn_token_to_image.set_lora_merged(merged)
