"""Reference side of test/model-parity.test.ts: exports the ``test`` config with LoRA C and
random non-zero ``lora_B``, and writes the PYTHON EAGER model's outputs for fixed inputs.

    /usr/bin/python3 test/python/parity_reference.py OUT_DIR

Writes OUT_DIR/model.pt (the TorchScript file, lora_B set), OUT_DIR/manifest.json and one raw
little-endian ``.bin`` file per tensor.  The manifest lists cases ``{name, method, inputs,
outputs}``; an input is a tensor ``{"file", "dtype", "shape"}``, ``null`` (None) or a bool.  Node
runs each case through ``TorchModule.run(method, inputs)`` and compares with ``outputs``.

The eager model is the very object the exporter scripted (``export()`` returns it); the same
seeded ``lora_B`` values are then written into it and into the saved TorchScript file, and the
two parameter sets are checked equal.  Decode cases take the eager ``encode_image`` outputs as
inputs, so decode is compared on its own; ``forward`` covers the chain.  With a single mask in
eval mode the decoder chooses a token by a stability threshold and an IoU argmax; the script
checks that no case is within 1e-3 of either decision, so fp32 noise cannot flip one.
"""

import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "scripts"))

from crackseg_sam2.export import export  # noqa: E402

CONFIG = dict(config="test", seed=4, lora="C", rank=4, alpha=8.0, dropout=0.0)
LORA_B_SEED = 9
DTYPES = {torch.float32: "float32", torch.int64: "int64", torch.uint8: "uint8"}


def set_lora_b(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("lora_B"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)


class Writer:
    def __init__(self, out_dir):
        self.out_dir = out_dir
        self.n = 0

    def tensor(self, x):
        x = x.detach().contiguous().cpu()
        name = f"t{self.n:03d}.bin"
        self.n += 1
        with open(os.path.join(self.out_dir, name), "wb") as f:
            f.write(x.numpy().tobytes())
        return {"file": name, "dtype": DTYPES[x.dtype], "shape": list(x.shape)}

    def value(self, v):
        if isinstance(v, torch.Tensor):
            return self.tensor(v)
        return v  # None, bool


def decision_margins(model, emb, h0, h1, coords, labels, index, mask):
    """Distance of every single-mask decision from its threshold (stability) or tie (IoU)."""
    dec = model.sam_mask_decoder
    idx = index.long()
    sparse, dense = model.sam_prompt_encoder(coords, labels, mask)
    masks, iou, _ = dec.predict_masks(
        emb[idx], model.sam_prompt_encoder.get_dense_pe(), sparse, dense, h0[idx], h1[idx]
    )
    stability = dec._stability(masks[:, 0:1])
    top2 = iou[:, 1:].topk(2, dim=-1).values
    return (
        float((stability - dec.stability_thresh).abs().min()),
        float((top2[:, 0] - top2[:, 1]).min()),
    )


def main(out_dir):
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "model.pt")
    eager = export(path, **CONFIG)["model"].eval()
    set_lora_b(eager, LORA_B_SEED)
    extra = {"metadata.json": ""}
    scripted = torch.jit.load(path, _extra_files=extra)
    set_lora_b(scripted, LORA_B_SEED)
    torch.jit.save(scripted, path, _extra_files=extra)
    saved = dict(torch.jit.load(path).named_parameters())
    ours = dict(eager.named_parameters())
    assert sorted(saved) == sorted(ours)
    assert all(torch.equal(saved[k], ours[k]) for k in ours), "eager and saved weights differ"
    assert any(float(p.abs().max()) > 0 for k, p in ours.items() if k.endswith("lora_B"))

    s = eager.image_size
    g = torch.Generator().manual_seed(21)
    images = torch.randint(0, 256, (2, 3, 300, 200), dtype=torch.uint8, generator=g)

    def rand_xy(n, p):
        return torch.rand(n, p, 2, generator=g) * s

    def boxes(n):
        a, b = rand_xy(n, 1), rand_xy(n, 1)
        return torch.cat([torch.minimum(a, b), torch.maximum(a, b)], dim=1)

    prompts = {
        # three boxes over both images (labels 2/3)
        "boxes": (boxes(3), torch.tensor([[2, 3]] * 3), torch.tensor([0, 1, 0])),
        # positive and negative points, padded with -1
        "points": (
            rand_xy(3, 3),
            torch.tensor([[1, 0, 1], [1, -1, -1], [0, 1, 1]]),
            torch.tensor([1, 0, 1]),
        ),
        # a box and a negative point (box corners first, as the official predictor orders them)
        "box+negative": (
            torch.cat([boxes(2), rand_xy(2, 1)], dim=1),
            torch.tensor([[2, 3, 0]] * 2),
            torch.tensor([0, 1]),
        ),
    }
    w = Writer(out_dir)
    cases = []
    margins = {"stability": 1.0, "iou_top2": 1.0}
    with torch.no_grad():
        emb, h0, h1 = eager.encode_image(images)
        cases.append(
            {
                "name": "encode_image",
                "method": "encode_image",
                "inputs": [w.tensor(images)],
                "outputs": [w.tensor(x) for x in (emb, h0, h1)],
            }
        )
        for pname, (coords, labels, index) in prompts.items():
            n = coords.shape[0]
            mask = torch.randn(n, 1, s // 4, s // 4, generator=g)
            for multimask in (True, False):
                for mask_input in (None, mask):
                    args = [emb, h0, h1, coords, labels, index, mask_input, multimask]
                    outs = eager.decode(*args)
                    if not multimask:
                        st, top = decision_margins(eager, *args[:7])
                        margins["stability"] = min(margins["stability"], st)
                        margins["iou_top2"] = min(margins["iou_top2"], top)
                    cases.append(
                        {
                            "name": f"decode {pname}, multimask {str(multimask).lower()}, "
                            f"mask_input {'yes' if mask_input is not None else 'none'}",
                            "method": "decode",
                            "inputs": [w.value(a) for a in args],
                            "outputs": [w.tensor(x) for x in outs],
                        }
                    )
        coords, labels, index = prompts["box+negative"]
        cases.append(
            {
                "name": "forward (box + negative point)",
                "method": "forward",
                "inputs": [w.tensor(x) for x in (images, coords, labels, index)],
                "outputs": [w.tensor(x) for x in eager(images, coords, labels, index)],
            }
        )
    assert margins["stability"] > 1e-3 and margins["iou_top2"] > 1e-3, margins
    manifest = {
        "model": "model.pt",
        "export": CONFIG,
        "lora_b_seed": LORA_B_SEED,
        "torch_version": torch.__version__,
        "decision_margins": margins,
        "cases": cases,
    }
    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    print(json.dumps({"cases": len(cases), "decision_margins": margins}))


if __name__ == "__main__":
    main(sys.argv[1])
