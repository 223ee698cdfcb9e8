"""An independent safetensors reader and writer (struct + json + numpy; the Debian python3 has no
``safetensors`` package), for the TS implementation's interop tests.

    python3 safetensors_reference.py read FILE    -> JSON {metadata, tensors:
                                                     {name: {dtype, shape, values}}}
    python3 safetensors_reference.py write FILE   -> writes FILE, prints the same JSON for it

Values are floats (F16/BF16 widened to float32) or ints, flattened in row-major order.
"""

import json
import struct
import sys

import numpy as np

NUMPY = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),  # numpy has no bfloat16: read the bits, widen below
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("u1"),
}


def values(dtype, array):
    if dtype == "BF16":
        return (array.astype(np.uint32) << 16).view(np.float32).astype(float).tolist()
    if dtype in ("F16", "F32", "F64"):
        return array.astype(float).tolist()
    return array.astype(int).tolist()


def read(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n].decode("utf-8"))
    data = raw[8 + n :]
    out = {"metadata": header.pop("__metadata__", {}), "tensors": {}}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        array = np.frombuffer(data[begin:end], dtype=NUMPY[entry["dtype"]])
        assert array.size == int(np.prod(entry["shape"])), name
        out["tensors"][name] = {
            "dtype": entry["dtype"],
            "shape": entry["shape"],
            "values": values(entry["dtype"], array),
        }
    return out


def write(path):
    bf16_bits = (np.array([1.0, -2.5, 3.140625], dtype=np.float32).view(np.uint32) >> 16).astype(
        "<u2"
    )
    tensors = [
        # Deliberately not in name order, to check the reader follows the offsets.
        ("z.lora_B", "F32", [2, 3], np.arange(6, dtype="<f4") * 0.5 - 1),
        ("a.lora_A", "F16", [3], np.array([0.5, -1.0, 65504.0], dtype="<f2")),
        ("m.bf16", "BF16", [3], bf16_bits),
        ("i64", "I64", [2], np.array([-(2**40), 7], dtype="<i8")),
        ("i32", "I32", [1, 2], np.array([-3, 2**31 - 1], dtype="<i4")),
        ("u8", "U8", [4], np.array([0, 1, 128, 255], dtype="u1")),
        ("flag", "BOOL", [2], np.array([1, 0], dtype="u1")),
        ("empty", "F32", [0, 4], np.zeros(0, dtype="<f4")),
    ]
    header = {"__metadata__": {"format": "pt", "note": "written by numpy"}}
    blobs = []
    offset = 0
    for name, dtype, shape, array in tensors:
        blob = array.tobytes()
        offsets = [offset, offset + len(blob)]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": offsets}
        blobs.append(blob)
        offset += len(blob)
    encoded = json.dumps(header).encode("utf-8")
    encoded += b" " * (-len(encoded) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)) + encoded + b"".join(blobs))
    return read(path)


if __name__ == "__main__":
    mode, file = sys.argv[1], sys.argv[2]
    print(json.dumps(read(file) if mode == "read" else write(file)))
