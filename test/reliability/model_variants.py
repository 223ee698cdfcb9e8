"""Writes variants of an exported model for test/reliability/model.test.ts.

usage: model_variants.py MODEL OUT_DIR
Writes OUT_DIR/<name>.pt for each variant below: the same module with a metadata.json that says
something else (`metadata` variants), or a module whose decode/encode_image return the wrong
shapes or count with the model's metadata (`broken` variants).
"""
import json
import sys
from typing import Optional, Tuple

import torch
from torch import Tensor

LIES = {
    "image-size-512": {"image_size": 512},
    "image-size-1e12": {"image_size": 10**12},
    "config-name-large": {"config_name": "large"},
    "config-tiny": {"config": {"trunk": {"embed_dim": 96, "stages": [1, 2, 7, 2]}}},
    "lora-rank-8": {"lora_rank": 8},
    "lora-targets-short": {"lora_targets": "drop-last"},
    "honest": {},
}


def merged(base, patch):
    out = dict(base)
    for key, value in patch.items():
        if value == "drop-last":
            out[key] = base[key][:-1]
        elif isinstance(value, dict):
            out[key] = merged(base.get(key, {}), value)
        else:
            out[key] = value
    return out


class WrongDecode(torch.nn.Module):
    """decode returns one mask too few (N - 1 masks for N prompts)."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size
        self.w = torch.nn.Parameter(torch.zeros(1))

    @torch.jit.export
    def preprocess(self, images: Tensor) -> Tensor:
        return torch.zeros(images.shape[0], 3, self.size, self.size)

    @torch.jit.export
    def encode_image(self, images: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        b = images.shape[0]
        e = self.size // 16
        high = torch.zeros(b, 8, 4 * e, 4 * e)
        mid = torch.zeros(b, 16, 2 * e, 2 * e)
        return torch.zeros(b, 64, e, e), high, mid

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
        n = point_coords.shape[0] - 1
        m = self.size // 4
        return torch.zeros(n, 1, m, m), torch.zeros(n, 1), torch.zeros(n, 1)


class WrongEncode(WrongDecode):
    """encode_image returns an image_embed whose batch is one larger than the images given."""

    @torch.jit.export
    def encode_image(self, images: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        b = images.shape[0]
        e = self.size // 16
        high = torch.zeros(b, 8, 4 * e, 4 * e)
        mid = torch.zeros(b, 16, 2 * e, 2 * e)
        return torch.zeros(b + 1, 64, e, e), high, mid


def main(model_path: str, out_dir: str) -> None:
    files = {"metadata.json": ""}
    model = torch.jit.load(model_path, _extra_files=files)
    metadata = json.loads(files["metadata.json"])
    for name, patch in LIES.items():
        text = json.dumps(merged(metadata, patch))
        torch.jit.save(model, f"{out_dir}/{name}.pt", _extra_files={"metadata.json": text})
    bare = {
        **metadata,
        "lora_strategy": "none",
        "lora_targets": [],
        "trainable_parameters": 0,
        "total_parameters": 1,
        # What the checks at load compare, for a module with no trunk, neck or decoder layers.
        "config": {
            "image_size": metadata["image_size"],
            "trunk": {"stages": []},
            "decoder": {"transformer_depth": 0},
        },
    }
    for name, cls in (("wrong-decode", WrongDecode), ("wrong-encode", WrongEncode)):
        module = torch.jit.script(cls(metadata["image_size"]))
        extra = {"metadata.json": json.dumps(bare)}
        torch.jit.save(module, f"{out_dir}/{name}.pt", _extra_files=extra)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
