"""Reference prediction and metrics for test/evaluate.test.ts and test/predict.test.ts.

Reads the JSON file named by its argument:
  {"model": path, "dtype": "float32" (default) or "bfloat16" (the model cast to it),
   "batches": [[{"width", "height", "image": base64 RGB interleaved,
                                "mask": base64 0/1 ground truth or null,
                                "boxes": [[x0, y0, x1, y1], ...],
                                "points": [{"coords": [[x, y], ...], "labels": [...]}, ...]}]]}
and prints, per image in order, {"mask": base64 0/1 prediction, "metrics": {...} or null}.

Prediction follows the official SAM 2 image predictor with multimask_output=False: prompt
coordinates mapped by SAM2Transforms.transform_coords (float32 x / W * S), boxes as two points
labelled 2 and 3; encode_image once per batch; the prompts decoded in groups of equal point
count, never padded (the official predictor decodes one image's prompts at a time and adds only
its own single not-a-point, which the model appends); low-res logits upsampled bilinearly
(align_corners=False) to the image size, > 0, ORed over the image's prompts. Metrics are plain
numpy on the confusion counts (empty-case convention of docs/metrics.md).
"""

import base64
import json
import sys

import numpy as np
import torch
import torch.nn.functional as F

import torchscript_cpu  # noqa: F401  (TorchScript CPU fusion off)


def decode_bytes(text, shape):
    return np.frombuffer(base64.b64decode(text), dtype=np.uint8).reshape(shape)


def prompt_points(image):
    prompts = [([b[0:2], b[2:4]], [2, 3]) for b in image["boxes"]]
    prompts += [(g["coords"], g["labels"]) for g in image["points"]]
    return prompts


def ratio(num, den, both_empty):
    if den == 0:
        return 1.0 if both_empty else 0.0
    return num / den


def metrics(pred, gt):
    p = pred.astype(bool)
    g = gt.astype(bool)
    tp = int(np.sum(p & g))
    fp = int(np.sum(p & ~g))
    fn = int(np.sum(~p & g))
    both_empty = tp + fp == 0 and tp + fn == 0
    precision = ratio(tp, tp + fp, both_empty)
    recall = ratio(tp, tp + fn, both_empty)
    return {
        "iou": ratio(tp, tp + fp + fn, both_empty),
        "dice": ratio(2 * tp, 2 * tp + fp + fn, both_empty),
        "precision": precision,
        "recall": recall,
        "f1": 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall),
    }


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        request = json.load(f)
    extra = {"metadata.json": ""}
    model = torch.jit.load(request["model"], map_location="cpu", _extra_files=extra)
    model.eval()
    model.to(getattr(torch, request.get("dtype", "float32")))
    size = json.loads(extra["metadata.json"])["image_size"]
    results = []
    for batch in request["batches"]:
        h, w = batch[0]["height"], batch[0]["width"]
        images = torch.stack(
            [torch.from_numpy(decode_bytes(im["image"], (h, w, 3)).copy()).permute(2, 0, 1)
             for im in batch]
        )
        prompts = [(b, p) for b, im in enumerate(batch) for p in prompt_points(im)]
        with torch.inference_mode():
            embeddings = model.encode_image(images)
            masks = np.zeros((len(batch), h, w), dtype=np.uint8)
            lengths = sorted({len(labels) for _, (_, labels) in prompts})
            for length in lengths:
                group = [(b, p) for b, p in prompts if len(p[1]) == length]
                coords = torch.tensor([xy for _, (xy, _) in group], dtype=torch.float32)
                coords = coords.reshape(len(group), length, 2)
                labels = torch.tensor([lab for _, (_, lab) in group], dtype=torch.int32)
                # SAM2Transforms.transform_coords(normalize=True, orig_hw=(h, w)).
                coords[..., 0] = coords[..., 0] / w
                coords[..., 1] = coords[..., 1] / h
                coords = coords * size
                index = torch.tensor([b for b, _ in group], dtype=torch.int64)
                low_res = model.decode(*embeddings, coords, labels, index, None, False)[0]
                for b in range(len(batch)):
                    mine = low_res[index == b].float()
                    if len(mine) == 0:
                        continue
                    up = F.interpolate(mine, size=(h, w), mode="bilinear", align_corners=False)
                    masks[b] |= (up > 0).any(dim=0)[0].numpy().astype(np.uint8)
        for b, im in enumerate(batch):
            gt = decode_bytes(im["mask"], (h, w)) if im.get("mask") else None
            results.append(
                {
                    "mask": base64.b64encode(masks[b].tobytes()).decode("ascii"),
                    "metrics": metrics(masks[b], gt) if gt is not None else None,
                }
            )
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
