"""crackseg's own implementation of the SAM 2.1 image path (Hiera trunk, FPN neck, prompt
encoder, mask decoder), with LoRA adapters and a TorchScript exporter.

Written for crackseg from the published architecture; state-dict key names follow the official
``facebookresearch/sam2`` checkpoints so that ``sam2.1_hiera_*.pt`` files load unchanged.
"""

import torch

# TorchScript CPU fusion off, as in PyTorch's own builds and in crackseg's addon: where torch is
# built with LLVM it compiles kernels during a graph's first optimised runs and rounds differently
# from eager mode (docs/architecture.md, docs/benchmarks.md).
torch._C._jit_override_can_fuse_on_cpu(False)
