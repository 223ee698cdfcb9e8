"""Writes test images with Pillow and OpenCV, independently of sharp, for test/data-decode.test.ts.

argv: DIR WIDTH HEIGHT; stdin: raw RGB bytes (8-bit). Writes into DIR:
- <mode>.bmp for Pillow modes 1, L, P, RGB, RGBA, and <mode>.rgb, the RGB pixels Pillow reads back
  from that BMP (mode 1 dithers, so the expectation is what the file holds);
- rgb16.png, rgb16.tif, grey16.png: 16-bit, each 8-bit value v stored as v * 257 (full scale);
- mask16.png (red > 127 as 0/65535) and mask16_01.png (the same as 0/1), 16-bit grey.
"""
import io
import sys

import cv2
import numpy as np
from PIL import Image

out, width, height = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rgb = np.frombuffer(sys.stdin.buffer.read(), np.uint8).reshape(height, width, 3)
for mode in ["1", "L", "P", "RGB", "RGBA"]:
    buffer = io.BytesIO()
    Image.fromarray(rgb).convert(mode).save(buffer, "BMP")
    with open(f"{out}/{mode}.bmp", "wb") as f:
        f.write(buffer.getvalue())
    with open(f"{out}/{mode}.rgb", "wb") as f:
        f.write(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB").tobytes())

wide = rgb.astype(np.uint16) * 257
cv2.imwrite(f"{out}/rgb16.png", wide[:, :, ::-1])
cv2.imwrite(f"{out}/rgb16.tif", wide[:, :, ::-1])
cv2.imwrite(f"{out}/grey16.png", wide[:, :, 0])
foreground = rgb[:, :, 0] > 127
cv2.imwrite(f"{out}/mask16.png", foreground.astype(np.uint16) * 65535)
cv2.imwrite(f"{out}/mask16_01.png", foreground.astype(np.uint16))
