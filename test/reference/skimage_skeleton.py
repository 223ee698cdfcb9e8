"""Reference for test/skeleton.test.ts: scikit-image's 2D skeletonize (Zhang's method).

stdin: JSON list of {"width", "height", "data": base64 of 0/1 bytes, row-major}.
stdout: JSON list of base64 0/1 bytes, one skeleton per mask.
"""
import base64
import json
import sys

import numpy as np
from skimage.morphology import skeletonize

out = []
for m in json.load(sys.stdin):
    mask = np.frombuffer(base64.b64decode(m["data"]), np.uint8).reshape(m["height"], m["width"])
    out.append(base64.b64encode(skeletonize(mask > 0).astype(np.uint8).tobytes()).decode())
json.dump(out, sys.stdout)
