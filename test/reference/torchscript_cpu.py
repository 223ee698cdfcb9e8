"""Imported by the references that run TorchScript: CPU fusion off, as crackseg's addon and
PyTorch's own builds have it (Debian's torch, built with LLVM, fuses on the CPU: kernels compiled
during a graph's first optimised runs, for seconds or past seven minutes, rounding differently)."""

import torch

torch._C._jit_override_can_fuse_on_cpu(False)
