"""crackseg's own implementation of the SAM 2.1 image path (Hiera trunk, FPN neck, prompt
encoder, mask decoder), with LoRA adapters and a TorchScript exporter.

Written for crackseg from the published architecture; state-dict key names follow the official
``facebookresearch/sam2`` checkpoints so that ``sam2.1_hiera_*.pt`` files load unchanged.
"""

import torch

# TorchScript fuses CPU kernels only where torch is built with LLVM (Debian's torch, not PyTorch's
# wheels): they compile during a graph's first optimised runs, for seconds, or past seven minutes
# (torch 2.6 merging LoRA), and round differently from eager mode. Off, as in PyTorch's own
# builds and in crackseg's addon.
torch._C._jit_override_can_fuse_on_cpu(False)
