"""Mask decoder (``sam_mask_decoder``) in its SAM 2.1 form: object-score token and MLP head,
IoU head with sigmoid, 1 + 3 mask tokens, high-resolution upscaling path, dynamic fall-back to
the best multimask output when a single mask is asked for in eval mode.

``conv_s0`` / ``conv_s1`` (projections of the stride-4 / stride-8 FPN maps) live here, as in the
official model, but are applied by the image encoder path (``Sam2ImageModel.encode_image``).

Shapes (N prompts, d width, e = S/16, T = P + 1 prompt tokens):
  image [N, d, e, e], image_pe [1, d, e, e], sparse [N, T, d], dense [N, d, e, e],
  high_res_0 [N, d/8, 4e, 4e], high_res_1 [N, d/4, 2e, 2e]
  -> masks [N, M, 4e, 4e], iou [N, M], object_score_logits [N, 1]   (M = 3 or 1)
"""

from typing import Tuple

import torch
from torch import Tensor, nn

from .layers import MLP, ConvTranspose2d, LayerNorm2d
from .transformer import TwoWayTransformer


class MaskDecoder(nn.Module):
    """Keys ``transformer``, ``iou_token``, ``mask_tokens``, ``obj_score_token``,
    ``output_upscaling.{0,1,3}``, ``conv_s0``, ``conv_s1``, ``output_hypernetworks_mlps.{i}``,
    ``iou_prediction_head``, ``pred_obj_score_head``."""

    def __init__(self, d: int, cfg: dict) -> None:
        super().__init__()
        self.transformer = TwoWayTransformer(
            int(cfg["transformer_depth"]),
            d,
            int(cfg["transformer_heads"]),
            int(cfg["transformer_mlp_dim"]),
            int(cfg["attention_downsample_rate"]),
        )
        self.num_mask_tokens = int(cfg["num_multimask_outputs"]) + 1
        self.iou_token = nn.Embedding(1, d)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, d)
        self.obj_score_token = nn.Embedding(1, d)
        self.output_upscaling = nn.Sequential(
            ConvTranspose2d(d, d // 4, kernel_size=2, stride=2),
            LayerNorm2d(d // 4),
            nn.GELU(),
            ConvTranspose2d(d // 4, d // 8, kernel_size=2, stride=2),
            nn.GELU(),
        )
        self.conv_s0 = nn.Conv2d(d, d // 8, kernel_size=1)
        self.conv_s1 = nn.Conv2d(d, d // 4, kernel_size=1)
        self.output_hypernetworks_mlps = nn.ModuleList(
            [MLP(d, d, d // 8, 3) for _ in range(self.num_mask_tokens)]
        )
        self.iou_prediction_head = MLP(
            d,
            int(cfg["iou_head_hidden_dim"]),
            self.num_mask_tokens,
            int(cfg["iou_head_depth"]),
            sigmoid_output=True,
        )
        self.pred_obj_score_head = MLP(d, d, 1, 3)
        self.stability_delta = float(cfg["dynamic_multimask_stability_delta"])
        self.stability_thresh = float(cfg["dynamic_multimask_stability_thresh"])

    def predict_masks(
        self,
        image: Tensor,
        image_pe: Tensor,
        sparse: Tensor,
        dense: Tensor,
        high_res_0: Tensor,
        high_res_1: Tensor,
    ) -> Tuple[Tensor, Tensor, Tensor]:
        """All ``num_mask_tokens`` masks: ``([N, 4, 4e, 4e], [N, 4], [N, 1])``."""
        n = sparse.shape[0]
        out_tokens = torch.cat(
            [self.obj_score_token.weight, self.iou_token.weight, self.mask_tokens.weight], dim=0
        )
        tokens = torch.cat([out_tokens.unsqueeze(0).expand(n, -1, -1), sparse], dim=1)
        src = image + dense
        pos = image_pe.expand(n, -1, -1, -1)
        b, c, h, w = src.shape

        hs, keys = self.transformer(src, pos, tokens)
        iou_token_out = hs[:, 1, :]
        mask_tokens_out = hs[:, 2 : 2 + self.num_mask_tokens, :]

        src = keys.transpose(1, 2).reshape(b, c, h, w)
        up = self.output_upscaling[0](src) + high_res_1
        up = self.output_upscaling[2](self.output_upscaling[1](up))
        up = self.output_upscaling[4](self.output_upscaling[3](up) + high_res_0)

        hyper = []
        for i, mlp in enumerate(self.output_hypernetworks_mlps):
            hyper.append(mlp(mask_tokens_out[:, i, :]))
        hyper_in = torch.stack(hyper, dim=1)  # [N, 4, d/8]
        b, c, h, w = up.shape
        masks = (hyper_in @ up.reshape(b, c, h * w)).reshape(b, -1, h, w)

        iou = self.iou_prediction_head(iou_token_out)
        obj = self.pred_obj_score_head(hs[:, 0, :])
        return masks, iou, obj

    def _stability(self, logits: Tensor) -> Tensor:
        """Area(logits > delta) / area(logits > -delta) per mask (1 where the union is empty)."""
        flat = logits.flatten(-2)
        inter = (flat > self.stability_delta).sum(-1).float()
        union = (flat > -self.stability_delta).sum(-1).float()
        return torch.where(union > 0, inter / union.clamp(min=1.0), torch.ones_like(inter))

    def forward(
        self,
        image: Tensor,
        image_pe: Tensor,
        sparse: Tensor,
        dense: Tensor,
        high_res_0: Tensor,
        high_res_1: Tensor,
        multimask: bool,
    ) -> Tuple[Tensor, Tensor, Tensor]:
        masks, iou, obj = self.predict_masks(image, image_pe, sparse, dense, high_res_0, high_res_1)
        if multimask:
            return masks[:, 1:], iou[:, 1:], obj
        if self.training:
            return masks[:, 0:1], iou[:, 0:1], obj
        # Eval, single mask: keep token 0 if it is stable, else the best multimask output.
        multi_masks = masks[:, 1:]
        multi_iou = iou[:, 1:]
        best = torch.argmax(multi_iou, dim=-1)
        rows = torch.arange(multi_iou.shape[0], device=iou.device)
        best_masks = multi_masks[rows, best].unsqueeze(1)
        best_iou = multi_iou[rows, best].unsqueeze(1)
        single_masks = masks[:, 0:1]
        single_iou = iou[:, 0:1]
        stable = self._stability(single_masks) >= self.stability_thresh  # [N, 1]
        out_masks = torch.where(stable[:, :, None, None], single_masks, best_masks)
        out_iou = torch.where(stable, single_iou, best_iou)
        return out_masks, out_iou, obj

    @torch.jit.export
    def set_lora_merged(self, merged: bool) -> None:
        """Reaches every Linear of the decoder: transformer, hypernetwork MLPs, IoU head and
        object-score head."""
        self.transformer.set_lora_merged(merged)
        for mlp in self.output_hypernetworks_mlps:
            mlp.set_lora_merged(merged)
        self.iou_prediction_head.set_lora_merged(merged)
        self.pred_obj_score_head.set_lora_merged(merged)
