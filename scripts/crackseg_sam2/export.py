"""Export the SAM 2.1 image path as TorchScript, with LoRA adapters injected.

    /usr/bin/python3 scripts/crackseg_sam2/export.py --checkpoint sam2.1_hiera_small.pt \
        --config small --lora B --rank 8 --alpha 16 --dropout 0.0 --out model.pt
    /usr/bin/python3 scripts/crackseg_sam2/export.py --random-init --seed 0 --config test \
        --lora A --out model.pt

(``PYTHONPATH=scripts python3 -m crackseg_sam2.export ...`` works too.)  Prints the skipped
memory-path keys, the LoRA targets and the trainable (LoRA) and total parameter counts; with
``--json`` prints one JSON object instead.  The interface and the embedded ``metadata.json``
are documented in docs/model-interface.md.
"""

import argparse
import json
import os
import sys
import time
from typing import Any, Dict, List, Optional

if __package__ in (None, ""):  # run as a file: make the package importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from crackseg_sam2.checkpoint import CheckpointError, load_official, sha256_file  # noqa: E402
from crackseg_sam2.configs import CONFIGS, get_config  # noqa: E402
from crackseg_sam2.lora import STRATEGIES, inject_lora  # noqa: E402
from crackseg_sam2.model import Sam2ImageModel  # noqa: E402

FORMAT = "crackseg-sam2-image"
FORMAT_VERSION = 1


def build(
    config: str,
    checkpoint: Optional[str] = None,
    seed: int = 0,
    lora: str = "none",
    rank: int = 8,
    alpha: float = 16.0,
    dropout: float = 0.0,
) -> Dict[str, Any]:
    """The eager model with LoRA injected, and its metadata (see docs/model-interface.md)."""
    cfg = get_config(config)
    if lora not in STRATEGIES:
        raise ValueError(f"unknown LoRA strategy {lora!r}; known: {', '.join(STRATEGIES)}")
    torch.manual_seed(seed)
    model = Sam2ImageModel(cfg, config)
    skipped: List[str] = []
    digest = None
    if checkpoint is not None:
        skipped = load_official(model, checkpoint)
        digest = sha256_file(checkpoint)
    targets = inject_lora(model, lora, rank, alpha, dropout)
    # merge_lora must reach every adapter (lora_B is zero here, so this changes no weight)
    model.merge_lora()
    unreached = [n for n in targets if not model.get_submodule(n).merged]
    model.unmerge_lora()
    if unreached:
        raise RuntimeError("merge_lora does not reach: " + ", ".join(unreached))
    model.eval()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config_name": config,
        "config": cfg,
        "image_size": model.image_size,
        "embed_size": model.embed_size,
        "mask_size": model.embed_size * 4,
        "lora_strategy": lora,
        "lora_rank": rank,
        "lora_alpha": alpha,
        "lora_dropout": dropout,
        "lora_targets": targets,
        "trainable_parameters": trainable,
        "total_parameters": total,
        "checkpoint_sha256": digest,
        "skipped_checkpoint_keys": len(skipped),
        "seed": seed,
        "torch_version": torch.__version__,
    }
    return {"model": model, "metadata": metadata, "skipped": skipped}


def export(out: str, **kwargs: Any) -> Dict[str, Any]:
    """Build, script and save to ``out`` (written to a temporary name, then renamed)."""
    built = build(**kwargs)
    scripted = torch.jit.script(built["model"])
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    tmp = f"{out}.tmp-{os.getpid()}"
    try:
        torch.jit.save(
            scripted, tmp, _extra_files={"metadata.json": json.dumps(built["metadata"], indent=1)}
        )
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return built


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="crackseg_sam2.export",
        description="Export SAM 2.1 (image path) with LoRA as TorchScript",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="official sam2.1_hiera_*.pt file")
    src.add_argument("--random-init", action="store_true", help="seeded random weights")
    p.add_argument("--config", required=True, choices=list(CONFIGS))
    p.add_argument("--seed", type=int, default=0, help="seed for random init and LoRA A (0)")
    p.add_argument("--lora", default="none", choices=list(STRATEGIES))
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--alpha", type=float, default=16.0)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--out", required=True, help="TorchScript file to write")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    return p.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    started = time.time()
    try:
        built = export(
            args.out,
            config=args.config,
            checkpoint=args.checkpoint,
            seed=args.seed,
            lora=args.lora,
            rank=args.rank,
            alpha=args.alpha,
            dropout=args.dropout,
        )
    except (CheckpointError, ValueError, OSError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    meta = built["metadata"]
    if args.json:
        summary = {
            "out": os.path.abspath(args.out),
            "trainable": meta["trainable_parameters"],
            "total": meta["total_parameters"],
            "skipped_keys": built["skipped"],
            "seconds": round(time.time() - started, 3),
            "metadata": meta,
        }
        print(json.dumps(summary))
    else:
        if built["skipped"]:
            print(f"skipped {len(built['skipped'])} memory-path keys:")
            for key in built["skipped"]:
                print(f"  {key}")
        print(f"LoRA {meta['lora_strategy']}: {len(meta['lora_targets'])} adapted modules")
        for name in meta["lora_targets"]:
            print(f"  {name}")
        print(f"trainable parameters: {meta['trainable_parameters']}")
        print(f"total parameters: {meta['total_parameters']}")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
