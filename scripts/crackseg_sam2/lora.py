"""LoRA adapters, injected in place of the targeted Linear layers.

A :class:`LoRALinear` keeps the replaced layer's ``weight`` and ``bias`` under the same names, so
the official key (e.g. ``sam_mask_decoder.transformer.layers.0.self_attn.q_proj.weight``) still
loads, and adds ``lora_A`` [r, in] and ``lora_B`` [out, r] next to them
(``...self_attn.q_proj.lora_A``).  Output: ``W x + b + (alpha / r) * B A dropout(x)``.
``lora_B`` starts at zero, so a freshly injected model computes exactly the base model.

Strategies (targets are official module names, relative to the model root):
  A  mask-decoder transformer attention: q/k/v/out projections of ``self_attn``,
     ``cross_attn_token_to_image``, ``cross_attn_image_to_token`` of every layer and of
     ``final_attn_token_to_image``
  B  A + Hiera trunk attention: ``image_encoder.trunk.blocks.{i}.attn.qkv`` and ``.attn.proj``
  C  B + every MLP/FFN linear of trunk and decoder: the MLP of every trunk block
     (``image_encoder.trunk.blocks.{i}.mlp.layers.{0,1}``), the MLP of every two-way transformer
     layer (``sam_mask_decoder.transformer.layers.{i}.mlp.layers.{0,1}``) and the mask decoder's
     MLP heads (``sam_mask_decoder.output_hypernetworks_mlps.{j}.layers.{0,1,2}``,
     ``sam_mask_decoder.iou_prediction_head.layers.{0,1,2}``,
     ``sam_mask_decoder.pred_obj_score_head.layers.{0,1,2}``).  Not adapted: convolutions, the
     trunk's shortcut projections ``blocks.{i}.proj`` (not part of an MLP), embeddings.
  none  no adapters
"""

import math
import re
from typing import Dict, List

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import Linear

STRATEGIES = ("none", "A", "B", "C")

_DEC = r"sam_mask_decoder\.transformer\."
_DEC_ATTN = (
    _DEC + r"(layers\.\d+\.(self_attn|cross_attn_token_to_image|cross_attn_image_to_token)"
    r"|final_attn_token_to_image)\.(q_proj|k_proj|v_proj|out_proj)"
)
_TRUNK_ATTN = r"image_encoder\.trunk\.blocks\.\d+\.attn\.(qkv|proj)"
_MLPS = r"(image_encoder\.trunk\.blocks\.\d+|" + _DEC + r"layers\.\d+)\.mlp\.layers\.\d+"
_DEC_HEADS = (
    r"sam_mask_decoder\.(output_hypernetworks_mlps\.\d+|iou_prediction_head|pred_obj_score_head)"
    r"\.layers\.\d+"
)

_PATTERNS: Dict[str, List[str]] = {
    "none": [],
    "A": [_DEC_ATTN],
    "B": [_DEC_ATTN, _TRUNK_ATTN],
    "C": [_DEC_ATTN, _TRUNK_ATTN, _MLPS, _DEC_HEADS],
}


class LoRALinear(Linear):
    """A Linear with a low-rank adapter; ``set_lora_merged`` folds ``scale * B @ A`` into
    ``weight`` (and takes it out again).  Idempotent: the state is tracked in ``merged``."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float) -> None:
        super().__init__(base.in_features, base.out_features, bias=base.bias is not None)
        with torch.no_grad():
            self.weight.copy_(base.weight)
            if base.bias is not None:
                self.bias.copy_(base.bias)
        self.rank = rank
        self.scaling = float(alpha) / float(rank)
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.lora_dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.merged = False

    def forward(self, x: Tensor) -> Tensor:
        out = F.linear(x, self.weight, self.bias)
        if not self.merged:
            out = out + F.linear(F.linear(self.lora_dropout(x), self.lora_A), self.lora_B) * (
                self.scaling
            )
        return out

    @torch.jit.export
    def set_lora_merged(self, merged: bool) -> None:
        if merged == self.merged:
            return
        with torch.no_grad():
            delta = torch.matmul(self.lora_B, self.lora_A) * self.scaling
            if merged:
                self.weight.add_(delta)
            else:
                self.weight.sub_(delta)
        self.merged = merged


def target_names(model: nn.Module, strategy: str) -> List[str]:
    """Names of the Linear modules that ``strategy`` adapts, in module order."""
    if strategy not in _PATTERNS:
        raise ValueError(f"unknown LoRA strategy {strategy!r}; known: {', '.join(STRATEGIES)}")
    patterns = [re.compile(p + "$") for p in _PATTERNS[strategy]]
    return [
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and any(p.match(name) for p in patterns)
    ]


def inject_lora(
    model: nn.Module, strategy: str, rank: int, alpha: float, dropout: float
) -> List[str]:
    """Replace the targets of ``strategy`` by :class:`LoRALinear` in place; freeze every other
    parameter.  Returns the target names."""
    names = target_names(model, strategy)
    if names and rank < 1:
        raise ValueError(f"LoRA rank must be >= 1, got {rank}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"LoRA dropout must be in [0, 1), got {dropout}")
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        base = getattr(parent, child)
        setattr(parent, child, LoRALinear(base, rank, alpha, dropout))
    for pname, p in model.named_parameters():
        p.requires_grad_("lora_" in pname)
    return names


def lora_parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)
