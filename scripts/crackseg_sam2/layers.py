"""Small building blocks shared by trunk, neck and heads: attention kernel, Linear, MLP,
LayerNorm2d, ConvTranspose2d.

``attention(q, k, v)`` takes ``[B, heads, Nq, D]``, ``[B, heads, Nk, D]``, ``[B, heads, Nk, Dv]``
and returns ``[B, heads, Nq, Dv]``.  Which body it has is decided once, at import time: torch >= 2
has ``F.scaled_dot_product_attention``; torch 1.13 gets the written-out softmax attention.  The
name is bound to one plain function, so TorchScript compiles only the body that exists.
"""

import math


import torch
import torch.nn.functional as F
from torch import Tensor, nn

HAS_SDPA: bool = hasattr(F, "scaled_dot_product_attention")

if HAS_SDPA:

    def attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        return F.scaled_dot_product_attention(q, k, v)

else:

    def attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        scale = 1.0 / math.sqrt(float(q.shape[-1]))
        weights = torch.softmax(torch.matmul(q * scale, k.transpose(-2, -1)), dim=-1)
        return torch.matmul(weights, v)


class Linear(nn.Linear):
    """``nn.Linear`` (same parameters, same state-dict keys) that LoRA can replace in place.

    Every Linear that a LoRA strategy may target is of this class, so that the containers can
    forward ``set_lora_merged`` to it whether or not it carries an adapter.
    """

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)

    @torch.jit.export
    def set_lora_merged(self, merged: bool) -> None:
        pass


class ConvTranspose2d(nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` (same parameters and keys) that also runs bf16 on the CPU, where
    torch 1.13 has no bf16 kernel for it: there it computes in fp32 and casts back."""

    def forward(self, x: Tensor) -> Tensor:
        weight, bias = self.weight, self.bias
        cpu_bf16 = x.dtype == torch.bfloat16 and x.device.type == "cpu"
        if cpu_bf16:
            x, weight = x.to(torch.float32), weight.to(torch.float32)
            bias = None if bias is None else bias.to(torch.float32)
        out = F.conv_transpose2d(
            x, weight, bias, self.stride, self.padding, self.output_padding, self.groups,
            self.dilation,
        )
        return out.to(torch.bfloat16) if cpu_bf16 else out


class MLP(nn.Module):
    """``num_layers`` Linear layers (keys ``layers.{i}``), activation between them, optional
    sigmoid on the output.  ``[..., input_dim] -> [..., output_dim]``."""

    def __init__(
        self,
        input_dim: int,
        hidden_dim: int,
        output_dim: int,
        num_layers: int,
        activation: str = "relu",
        sigmoid_output: bool = False,
    ) -> None:
        super().__init__()
        self.num_layers = num_layers
        dims_in = [input_dim] + [hidden_dim] * (num_layers - 1)
        dims_out = [hidden_dim] * (num_layers - 1) + [output_dim]
        self.layers = nn.ModuleList([Linear(i, o) for i, o in zip(dims_in, dims_out)])
        self.act = nn.GELU() if activation == "gelu" else nn.ReLU()
        self.sigmoid_output = sigmoid_output

    def forward(self, x: Tensor) -> Tensor:
        last = self.num_layers - 1
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < last:
                x = self.act(x)
        if self.sigmoid_output:
            x = torch.sigmoid(x)
        return x

    @torch.jit.export
    def set_lora_merged(self, merged: bool) -> None:
        for layer in self.layers:
            layer.set_lora_merged(merged)


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel axis of ``[B, C, H, W]`` (keys ``weight``, ``bias``)."""

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]
