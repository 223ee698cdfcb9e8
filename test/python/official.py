"""Builds the OFFICIAL SAM 2.1 model (facebookresearch/sam2) from a local, git-ignored copy of its
sources, for one-off reference work: deriving the key fixture and numeric comparisons.  Not used
by the package or by the tests.

    git -C <sam2 mirror> archive HEAD sam2 | tar x -C .ref     # .ref/sam2/...
    /usr/bin/python3 test/python/official.py   # writes the key fixture

The official package imports hydra, iopath and tqdm (absent here) and calls
``F.scaled_dot_product_attention`` (absent in torch 1.13); this module stubs the imports it
does not need, installs a written-out attention when SDPA is missing, and instantiates the
``_target_`` tree of the official YAML configuration itself (no hydra).
"""

import importlib
import json
import math
import os
import sys
import types

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
REF = os.environ.get("CRACKSEG_SAM2_REF", os.path.join(ROOT, ".ref"))
FIXTURE = os.path.join(ROOT, "test", "fixtures", "sam2.1-image-keys.json")

YAML = {
    "tiny": "sam2.1_hiera_t.yaml",
    "small": "sam2.1_hiera_s.yaml",
    "base_plus": "sam2.1_hiera_b+.yaml",
    "large": "sam2.1_hiera_l.yaml",
}

#: Top-level parts of SAM2Base that the image predictor uses; every other top-level parameter,
#: buffer or submodule belongs to the video/memory path.  The memory prefixes written to the
#: fixture are derived from the official model with this (``memory_prefixes``); the runtime list
#: is ``crackseg_sam2.checkpoint.MEMORY_PREFIXES``, and the tests compare the two.
IMAGE_PATH_PARTS = ("image_encoder", "sam_prompt_encoder", "sam_mask_decoder", "no_mem_embed")


def _setup():
    if "sam2" in sys.modules:
        return
    # the package without its __init__ (which starts hydra)
    pkg = types.ModuleType("sam2")
    pkg.__path__ = [os.path.join(REF, "sam2")]
    sys.modules["sam2"] = pkg
    for name in ("iopath", "iopath.common", "iopath.common.file_io"):
        sys.modules.setdefault(name, types.ModuleType(name))
    sys.modules["iopath.common.file_io"].g_pathmgr = None
    tqdm = types.ModuleType("tqdm")
    tqdm.tqdm = lambda x, *a, **k: x
    sys.modules.setdefault("tqdm", tqdm)
    if not hasattr(F, "scaled_dot_product_attention"):

        def sdpa(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False):
            w = torch.softmax((q / math.sqrt(q.shape[-1])) @ k.transpose(-2, -1), dim=-1)
            return w @ v

        F.scaled_dot_product_attention = sdpa


def _instantiate(node):
    if isinstance(node, dict):
        args = {k: _instantiate(v) for k, v in node.items() if k != "_target_"}
        if "_target_" in node:
            mod, _, cls = node["_target_"].rpartition(".")
            return getattr(importlib.import_module(mod), cls)(**args)
        return args
    if isinstance(node, list):
        return [_instantiate(v) for v in node]
    if isinstance(node, str):  # YAML 1.1 reads "1e-6" as a string; OmegaConf does not
        try:
            return float(node)
        except ValueError:
            return node
    return node


def build_official(config: str, dynamic_multimask: bool = True):
    """The official SAM2Base for ``config`` (tiny/small/base_plus/large), random weights,
    with the image predictor's decoder settings."""
    import yaml

    _setup()
    with open(os.path.join(REF, "sam2", "configs", "sam2.1", YAML[config])) as f:
        cfg = yaml.safe_load(f)["model"]
    if dynamic_multimask:
        cfg["sam_mask_decoder_extra_args"] = {
            "dynamic_multimask_via_stability": True,
            "dynamic_multimask_stability_delta": 0.05,
            "dynamic_multimask_stability_thresh": 0.98,
        }
    return _instantiate(cfg)


def memory_prefixes(model) -> list:
    """State-dict prefixes of the official model's memory-path parts, in state-dict order:
    ``name.`` for a submodule, ``name`` for a top-level parameter or buffer."""
    out = []
    for key in model.state_dict():
        head, dot, _ = key.partition(".")
        if head in IMAGE_PATH_PARTS:
            continue
        prefix = head + dot
        if prefix not in out:
            out.append(prefix)
    return out


def is_memory_key(key: str, prefixes=None) -> bool:
    if prefixes is None:
        prefixes = memory_prefixes(build_official("tiny"))
    return any(key.startswith(p) for p in prefixes)


def write_fixture() -> None:
    out = {
        "about": (
            "Image-path state-dict keys and shapes of the official SAM 2.1 models, and the "
            "prefixes of their memory-path keys. Produced by test/python/"
            "official.py, which instantiates facebookresearch/sam2 (commit in 'source') from "
            "its sam2.1 YAML configs with torch " + torch.__version__ + ": every key of "
            "SAM2Base.state_dict() that does not start with a memory prefix is listed. Memory "
            "prefixes: the top-level parts of SAM2Base other than "
            + ", ".join(IMAGE_PATH_PARTS)
            + ", in state-dict order."
        ),
        "source": os.environ.get("CRACKSEG_SAM2_COMMIT", "unknown"),
        "memory_path_prefixes": [],
        "memory_path_keys": {},
        "image_keys": {},
    }
    for name in YAML:
        model = build_official(name)
        prefixes = memory_prefixes(model)
        if out["memory_path_prefixes"] and prefixes != out["memory_path_prefixes"]:
            raise AssertionError(f"{name}: memory-path parts differ between configs: {prefixes}")
        out["memory_path_prefixes"] = prefixes
        sd = model.state_dict()
        out["image_keys"][name] = {
            k: list(v.shape) for k, v in sd.items() if not is_memory_key(k, prefixes)
        }
        out["memory_path_keys"][name] = {
            k: list(v.shape) for k, v in sd.items() if is_memory_key(k, prefixes)
        }
        print(name, len(out["image_keys"][name]), "image keys,", len(out["memory_path_keys"][name]),
              "memory keys")
    with open(FIXTURE, "w") as f:
        f.write(_compact_json(out) + "\n")


def _compact_json(obj, depth: int = 0) -> str:
    """JSON with one entry per line, shapes and short lists kept on one line."""
    pad = "  " * (depth + 1)
    if isinstance(obj, dict):
        items = [f"{pad}{json.dumps(k)}: {_compact_json(v, depth + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + "  " * depth + "}"
    if isinstance(obj, list) and any(isinstance(v, str) for v in obj):
        return "[\n" + ",\n".join(pad + json.dumps(v) for v in obj) + "\n" + "  " * depth + "]"
    return json.dumps(obj)


if __name__ == "__main__":
    write_fixture()
