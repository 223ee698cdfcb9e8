"""crackseg's own implementation of the SAM 2.1 image path (Hiera trunk, FPN neck, prompt
encoder, mask decoder), with LoRA adapters and a TorchScript exporter.

Written for crackseg from the published architecture; state-dict key names follow the official
``facebookresearch/sam2`` checkpoints so that ``sam2.1_hiera_*.pt`` files load unchanged.
"""
