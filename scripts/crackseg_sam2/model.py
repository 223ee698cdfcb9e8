"""The SAM 2.1 image path as one scriptable module, with the official top-level names
(``image_encoder.trunk``, ``image_encoder.neck``, ``sam_prompt_encoder``, ``sam_mask_decoder``,
``no_mem_embed``).  Its scripted methods are the model interface documented in
``docs/model-interface.md``.

Shapes (S = image_size, e = S/16, d = d_model; B images, N prompts, P points per prompt):
  encode_image(images uint8 [B, 3, H, W])
      -> image_embed [B, d, e, e], high_res_0 [B, d/8, 4e, 4e], high_res_1 [B, d/4, 2e, 2e]
  decode(image_embed, high_res_0, high_res_1, point_coords [N, P, 2] float,
         point_labels [N, P] int, image_index [N] int64, mask_input [N, 1, 4e, 4e] or None,
         multimask: bool)
      -> low_res_logits [N, M, 4e, 4e], iou [N, M], object_score_logits [N, 1]  (M = 3 or 1)
  forward(images, point_coords, point_labels, image_index) = encode_image + decode(single mask)
"""

from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .configs import trunk_channels
from .mask_decoder import MaskDecoder
from .neck import FpnNeck
from .prompt_encoder import PromptEncoder
from .trunk import Hiera

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ImageEncoder(nn.Module):
    """Trunk + neck, minus the ``scalp`` lowest-resolution levels.  Keys ``trunk``, ``neck``.
    ``[B, 3, S, S]`` (normalised) -> FPN maps at strides 4, 8, 16 (for scalp 1)."""

    def __init__(self, cfg: dict) -> None:
        super().__init__()
        self.trunk = Hiera(cfg["trunk"])
        self.neck = FpnNeck(
            int(cfg["neck"]["d_model"]),
            trunk_channels(cfg)[::-1],
            cfg["neck"]["fpn_top_down_levels"],
        )
        self.scalp = int(cfg["neck"]["scalp"])

    def forward(self, x: Tensor) -> List[Tensor]:
        feats = self.neck(self.trunk(x))
        if self.scalp > 0:
            feats = feats[: len(feats) - self.scalp]
        return feats


class Sam2ImageModel(nn.Module):
    def __init__(self, cfg: dict, config_name: str = "") -> None:
        super().__init__()
        d = int(cfg["neck"]["d_model"])
        # The configuration's name (configs.py), for loaders to check metadata.json against.
        self.config_label = config_name
        self.image_size = int(cfg["image_size"])
        self.embed_size = self.image_size // 16
        self.image_encoder = ImageEncoder(cfg)
        self.sam_prompt_encoder = PromptEncoder(
            d, self.image_size, int(cfg["prompt"]["mask_in_chans"])
        )
        self.sam_mask_decoder = MaskDecoder(d, cfg["decoder"])
        self.no_mem_embed = nn.Parameter(torch.zeros(1, 1, d))
        nn.init.trunc_normal_(self.no_mem_embed, std=0.02)
        self.register_buffer(
            "pixel_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False
        )
        self.register_buffer(
            "pixel_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False
        )
        self.lora_merged = False

    @torch.jit.export
    def config_name(self) -> str:
        return self.config_label

    @torch.jit.export
    def preprocess(self, images: Tensor) -> Tensor:
        """uint8 ``[B, 3, H, W]`` -> float ``[B, 3, S, S]``: to [0, 1], bilinear resize with
        antialiasing (as torchvision's ``Resize`` on tensors), ImageNet normalisation."""
        x = images.to(torch.float32) / 255.0
        if x.shape[-2] != self.image_size or x.shape[-1] != self.image_size:
            x = F.interpolate(
                x,
                size=(self.image_size, self.image_size),
                mode="bilinear",
                align_corners=False,
                antialias=True,
            )
        x = (x - self.pixel_mean.to(torch.float32)) / self.pixel_std.to(torch.float32)
        return x.to(self.pixel_mean.dtype)

    @torch.jit.export
    def encode_image(self, images: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        feats = self.image_encoder(self.preprocess(images))
        high_res_0 = self.sam_mask_decoder.conv_s0(feats[0])
        high_res_1 = self.sam_mask_decoder.conv_s1(feats[1])
        image_embed = feats[2] + self.no_mem_embed.reshape(1, -1, 1, 1)
        return image_embed, high_res_0, high_res_1

    @torch.jit.export
    def decode(
        self,
        image_embed: Tensor,
        high_res_0: Tensor,
        high_res_1: Tensor,
        point_coords: Tensor,
        point_labels: Tensor,
        image_index: Tensor,
        mask_input: Optional[Tensor],
        multimask: bool,
    ) -> Tuple[Tensor, Tensor, Tensor]:
        idx = image_index.to(device=image_embed.device, dtype=torch.long)
        sparse, dense = self.sam_prompt_encoder(point_coords, point_labels, mask_input)
        return self.sam_mask_decoder(
            image_embed.index_select(0, idx),
            self.sam_prompt_encoder.get_dense_pe(),
            sparse,
            dense,
            self._high_res_per_prompt(high_res_0, idx),
            self._high_res_per_prompt(high_res_1, idx),
            multimask,
        )

    def _high_res_per_prompt(self, features: Tensor, idx: Tensor) -> Tensor:
        """Each prompt's image's high-res ``features``. The decoder only adds them to per-prompt
        tensors, so those of one image without a gradient to route back are passed as a broadcast
        view instead of a copy per prompt: the same masks, bit for bit (not so for the image
        embedding, whose view changes the decoder's rounding; it is copied)."""
        if features.size(0) == 1 and not features.requires_grad:
            return features.expand(idx.size(0), -1, -1, -1)
        return features.index_select(0, idx)

    def forward(
        self, images: Tensor, point_coords: Tensor, point_labels: Tensor, image_index: Tensor
    ) -> Tuple[Tensor, Tensor, Tensor]:
        image_embed, high_res_0, high_res_1 = self.encode_image(images)
        return self.decode(
            image_embed, high_res_0, high_res_1, point_coords, point_labels, image_index, None,
            False,
        )

    @torch.jit.export
    def merge_lora(self) -> None:
        """Fold every adapter into its base weight (no-op when already merged or no LoRA)."""
        self.image_encoder.trunk.set_lora_merged(True)
        self.sam_mask_decoder.set_lora_merged(True)
        self.lora_merged = True

    @torch.jit.export
    def unmerge_lora(self) -> None:
        """Undo :meth:`merge_lora` (no-op when not merged)."""
        self.image_encoder.trunk.set_lora_merged(False)
        self.sam_mask_decoder.set_lora_merged(False)
        self.lora_merged = False
