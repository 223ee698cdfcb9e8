"""Reference for test/components.test.ts: OpenCV's 8-connected components with stats.

stdin: JSON list of {"width", "height", "data": base64 of 0/1 bytes, row-major}.
stdout: JSON list, per mask, of {"labels": base64 int32 little-endian,
"stats": [[x, y, w, h, area], ...]} (background row dropped).
"""
import base64
import json
import sys

import cv2
import numpy as np

out = []
for m in json.load(sys.stdin):
    mask = np.frombuffer(base64.b64decode(m["data"]), np.uint8).reshape(m["height"], m["width"])
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8, ltype=cv2.CV_32S)
    out.append({
        "labels": base64.b64encode(labels.astype("<i4").tobytes()).decode(),
        "stats": stats[1:].tolist(),
    })
json.dump(out, sys.stdout)
