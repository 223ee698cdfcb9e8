"""Reference implementation of crackseg's metrics (docs/metrics.md) with numpy, OpenCV and skimage.

Reads JSON from stdin: {"radius": r, "images": [{"width", "height", "prediction", "groundTruth",
"probabilities"?}]} with masks as base64 uint8 (0/1) and probabilities as base64 little-endian
float32. Writes JSON to stdout: per-image skeletons (base64), counts and metrics, and the dataset
aggregates. Written independently of the TypeScript code: it reuses no logic from it.
"""
import base64
import json
import sys

import cv2
import numpy as np
from skimage.morphology import skeletonize

THRESHOLDS = np.arange(1, 100) / 100.0


def decode(text, dtype, shape):
    return np.frombuffer(base64.b64decode(text), dtype=dtype).reshape(shape)


def encode(array):
    return base64.b64encode(np.ascontiguousarray(array, dtype=np.uint8).tobytes()).decode()


def disk(radius):
    reach = int(np.floor(radius))
    y, x = np.mgrid[-reach : reach + 1, -reach : reach + 1]
    return ((x * x + y * y) <= radius * radius).astype(np.uint8)


def ratio(numerator, denominator, both_empty):
    if denominator == 0:
        return 1.0 if both_empty else 0.0
    return numerator / denominator


def f_measure(precision, recall):
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def dilate(mask, radius):
    return cv2.dilate(
        mask.astype(np.uint8), disk(radius), borderType=cv2.BORDER_CONSTANT, borderValue=0
    ).astype(bool)


def counts_of(pred, gt, skel_pred, skel_gt, radius):
    return {
        "tp": int((pred & gt).sum()),
        "fp": int((pred & ~gt).sum()),
        "fn": int((~pred & gt).sum()),
        "sp": int(skel_pred.sum()),
        "sg": int(skel_gt.sum()),
        "mp": int((skel_pred & dilate(skel_gt, radius)).sum()),
        "mg": int((skel_gt & dilate(skel_pred, radius)).sum()),
        "sp_in_g": int((skel_pred & gt).sum()),
        "sg_in_p": int((skel_gt & pred).sum()),
    }


def metrics_of(c):
    both_empty = c["tp"] + c["fp"] == 0 and c["tp"] + c["fn"] == 0
    precision = ratio(c["tp"], c["tp"] + c["fp"], both_empty)
    recall = ratio(c["tp"], c["tp"] + c["fn"], both_empty)
    matched = c["mp"] + c["mg"]
    return {
        "iou": ratio(c["tp"], c["tp"] + c["fp"] + c["fn"], both_empty),
        "dice": ratio(2 * c["tp"], 2 * c["tp"] + c["fp"] + c["fn"], both_empty),
        "precision": precision,
        "recall": recall,
        "f1": f_measure(precision, recall),
        "skeletonIou": ratio(matched, 2 * (c["sp"] + c["sg"]) - matched, both_empty),
        "clDice": f_measure(
            ratio(c["sp_in_g"], c["sp"], both_empty), ratio(c["sg_in_p"], c["sg"], both_empty)
        ),
    }


def sweep_counts(prob, gt):
    p = prob.astype(np.float64)
    predicted = np.array([(p >= t).sum() for t in THRESHOLDS], dtype=np.float64)
    hits = np.array([((p >= t) & gt).sum() for t in THRESHOLDS], dtype=np.float64)
    return float(gt.sum()), predicted, hits


def f_per_threshold(gt_total, predicted, hits):
    out = []
    for pp, tp in zip(predicted, hits):
        both_empty = pp == 0 and gt_total == 0
        out.append(f_measure(ratio(tp, pp, both_empty), ratio(tp, gt_total, both_empty)))
    return np.array(out)


def best(fs):
    i = int(np.argmax(fs))  # first maximum: the lowest threshold
    return float(fs[i]), float(THRESHOLDS[i])


def stats(values):
    v = np.array(values, dtype=np.float64)
    return {
        "mean": float(v.mean()),
        "std": float(v.std()),
        "median": float(np.median(v)),
        "min": float(v.min()),
        "max": float(v.max()),
    }


def main():
    request = json.load(sys.stdin)
    radius = request["radius"]
    images, totals = [], None
    sweep_total, best_fs = None, []
    for image in request["images"]:
        shape = (image["height"], image["width"])
        pred = decode(image["prediction"], np.uint8, shape) != 0
        gt = decode(image["groundTruth"], np.uint8, shape) != 0
        skel_pred = skeletonize(pred)
        skel_gt = skeletonize(gt)
        c = counts_of(pred, gt, skel_pred, skel_gt, radius)
        totals = c if totals is None else {k: totals[k] + c[k] for k in c}
        out = {
            "skeletonPrediction": encode(skel_pred),
            "skeletonGroundTruth": encode(skel_gt),
            "counts": c,
            "metrics": metrics_of(c),
        }
        if "probabilities" in image:
            prob = decode(image["probabilities"], "<f4", shape)
            gt_total, predicted, hits = sweep_counts(prob, gt)
            f, t = best(f_per_threshold(gt_total, predicted, hits))
            out["bestF"], out["bestThreshold"] = f, t
            out["predictedPixels"], out["truePositives"] = predicted.tolist(), hits.tolist()
            best_fs.append(f)
            if sweep_total is None:
                sweep_total = [gt_total, predicted.copy(), hits.copy()]
            else:
                sweep_total[0] += gt_total
                sweep_total[1] += predicted
                sweep_total[2] += hits
        images.append(out)

    pooled = metrics_of(totals)
    aggregate = {
        key: {**stats([im["metrics"][key] for im in images]), "pooled": pooled[key]}
        for key in pooled
    }
    result = {"images": images, "aggregate": aggregate}
    if sweep_total is not None:
        ods, ods_threshold = best(f_per_threshold(*sweep_total))
        result["ods"] = {"f": ods, "threshold": ods_threshold}
        result["ois"] = float(np.mean(best_fs))
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
