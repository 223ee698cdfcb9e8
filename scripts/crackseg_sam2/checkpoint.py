"""Loading official SAM 2.1 checkpoints (``sam2.1_hiera_*.pt``: ``{"model": state_dict}``) into
:class:`~crackseg_sam2.model.Sam2ImageModel` with their own key names.

Every image-path key must be present with the right shape; memory-path keys (video memory
attention/encoder, object pointers, ...) are skipped and reported; anything else is an error
that names the key.
"""

import hashlib
import pickle
from typing import Dict, List, Union

import torch
from torch import Tensor, nn

#: State-dict prefixes of the official SAM2Base that belong to the memory (video) path.  The one
#: runtime definition; the tests compare it with ``memory_path_prefixes`` in
#: test/fixtures/sam2.1-image-keys.json, which is derived from the official code.
MEMORY_PREFIXES = (
    "memory_attention.",
    "memory_encoder.",
    "maskmem_tpos_enc",
    "no_mem_pos_enc",
    "mask_downsample.",
    "obj_ptr_proj.",
    "obj_ptr_tpos_proj.",
    "no_obj_ptr",
    "no_obj_embed_spatial",
)


class CheckpointError(ValueError):
    pass


def is_memory_key(key: str) -> bool:
    return key.startswith(MEMORY_PREFIXES)


def image_path_shapes(model: nn.Module) -> Dict[str, List[int]]:
    """The model's official (non-LoRA) state-dict keys and their shapes."""
    return {k: list(v.shape) for k, v in model.state_dict().items() if "lora_" not in k}


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_state_dict(source: Union[str, Dict[str, Tensor]]) -> Dict[str, Tensor]:
    """The state dict of an official checkpoint file (or of an already loaded one).

    Files are read with ``weights_only=True``: only tensors and plain containers unpickle, so a
    checkpoint cannot run code; anything else is a :class:`CheckpointError`."""
    if isinstance(source, str):
        try:
            obj = torch.load(source, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as err:
            detail = str(err).strip().splitlines()[-1]
            start = detail.find("WeightsUnpickler error:")
            detail = detail[start:] if start >= 0 else detail
            raise CheckpointError(
                f"{source}: not a plain tensor checkpoint, refused by weights_only loading "
                f"({detail})"
            ) from err
    else:
        obj = source
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        obj = obj["model"]
    if not isinstance(obj, dict):
        raise CheckpointError('checkpoint is not a state dict nor {"model": state_dict}')
    return obj


def load_official(model: nn.Module, source: Union[str, Dict[str, Tensor]]) -> List[str]:
    """Copy the image-path weights of ``source`` into ``model`` (before LoRA injection).
    Returns the skipped memory-path keys; raises :class:`CheckpointError` listing every
    missing, unexpected or mis-shaped image-path key."""
    sd = read_state_dict(source)
    expected = image_path_shapes(model)
    skipped = sorted(k for k in sd if is_memory_key(k))
    missing = sorted(k for k in expected if k not in sd)
    unexpected = sorted(k for k in sd if k not in expected and not is_memory_key(k))
    misshaped = sorted(
        f"{k}: checkpoint {list(sd[k].shape)}, model {expected[k]}"
        for k in expected
        if k in sd and list(sd[k].shape) != expected[k]
    )
    problems = []
    if missing:
        problems.append("missing image-path keys: " + ", ".join(missing))
    if unexpected:
        problems.append("unexpected keys: " + ", ".join(unexpected))
    if misshaped:
        problems.append("shape mismatches: " + "; ".join(misshaped))
    if problems:
        raise CheckpointError("checkpoint does not fit the model: " + " | ".join(problems))
    model.load_state_dict({k: sd[k] for k in expected}, strict=True)
    return skipped
