"""Python reference for the native trainer: the same micro-batches through torch.jit.load of the
same file, the loss written out from its definition (docs/training.md), torch.optim.AdamW.
With OPTIONS.precision "bfloat16" the model is cast to bf16 after fp32 master copies of the LoRA
weights are taken; gradients are summed into the masters in fp32, AdamW updates the masters and
they are copied (rounded) into the model after each optimizer step.

usage: train_step_reference.py MODEL.pt BATCHES.json OPTIONS.json OUT.json
BATCHES.json: [{images: flat uint8 [B, H, W, 3], images_shape, masks: flat, masks_shape, coords,
coords_shape, labels, labels_shape, image_index}] — micro-batches in order. Writes per-micro-batch
losses, the (master) weights after the last step and, as float, the model's own copies of them.
"""
import json
import math
import sys

import torch
import torch.nn.functional as F

import torchscript_cpu  # noqa: F401  (TorchScript CPU fusion off)


def soft_erode(x):
    return torch.min(-F.max_pool2d(-x, (3, 1), 1, (1, 0)), -F.max_pool2d(-x, (1, 3), 1, (0, 1)))


def soft_dilate(x):
    return F.max_pool2d(x, 3, 1, 1)


def soft_skeleton(x, iterations=5):
    skeleton = F.relu(x - soft_dilate(soft_erode(x)))
    for _ in range(iterations):
        x = soft_erode(x)
        delta = F.relu(x - soft_dilate(soft_erode(x)))
        skeleton = skeleton + F.relu(delta - skeleton * delta)
    return skeleton


def losses(model, batch, o):
    images = torch.tensor(batch["images"], dtype=torch.uint8).reshape(batch["images_shape"])
    images = images.permute(0, 3, 1, 2).contiguous()  # encode_image takes [B, 3, H, W]
    masks = torch.tensor(batch["masks"], dtype=torch.float32).reshape(batch["masks_shape"])
    coords = torch.tensor(batch["coords"], dtype=torch.float32).reshape(batch["coords_shape"])
    labels = torch.tensor(batch["labels"], dtype=torch.int32).reshape(batch["labels_shape"])
    index = torch.tensor(batch["image_index"], dtype=torch.int64)
    low_res = model(images, coords, labels, index)[0].float()
    h, w = images.shape[2], images.shape[3]
    union = []
    for b in range(images.shape[0]):
        mine = low_res[index == b]
        up = F.interpolate(mine, size=(h, w), mode="bilinear", align_corners=False)
        union.append(up.max(dim=0).values)
    logits = torch.stack(union)  # [B, 1, H, W]
    target = masks.unsqueeze(1)
    p = torch.sigmoid(logits)
    dims = (1, 2, 3)
    dice = (1 - (2 * (p * target).sum(dims) + 1) / (p.sum(dims) + target.sum(dims) + 1)).mean()
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = p * target + (1 - p) * (1 - target)
    alpha_t = o["focalAlpha"] * target + (1 - o["focalAlpha"]) * (1 - target)
    focal = (alpha_t * ce * (1 - p_t) ** o["focalGamma"]).mean()
    total = o["diceWeight"] * dice + o["focalWeight"] * focal
    skeleton = torch.tensor(0.0)
    if o["skeletonWeight"] > 0:
        sp, st = soft_skeleton(p), soft_skeleton(target)
        tprec = ((sp * target).sum() + 1) / (sp.sum() + 1)
        tsens = ((st * p).sum() + 1) / (st.sum() + 1)
        skeleton = 1 - 2 * tprec * tsens / (tprec + tsens)
        total = total + o["skeletonWeight"] * skeleton
    return total, dice, focal, skeleton


def learning_rate(o, step):
    if step < o["warmupSteps"]:
        return o["learningRate"] * (step + 1) / o["warmupSteps"]
    span = max(1, o["totalSteps"] - o["warmupSteps"])
    progress = min(1.0, (step - o["warmupSteps"]) / span)
    low, high = o["minLearningRate"], o["learningRate"]
    return low + 0.5 * (high - low) * (1 + math.cos(math.pi * progress))


def main(model_path, batches_path, options_path, out_path):
    model = torch.jit.load(model_path)
    model.train()
    # As the native trainer steps: the methods run op by op, never as optimized differentiable
    # graphs (whose later runs round differently in the last bits, which bf16 shows).
    torch._C._set_graph_executor_optimize(False)
    o = json.load(open(options_path))
    batches = json.load(open(batches_path))
    names = [name for name, _ in model.named_parameters() if "lora_" in name]
    for name, p in model.named_parameters():
        p.requires_grad_("lora_" in name)
    bf16 = o["precision"] == "bfloat16"
    masters = [p.detach().float().clone() for name, p in model.named_parameters() if name in names]
    if bf16:
        model.to(torch.bfloat16)
    params = [p for name, p in model.named_parameters() if name in names]
    if not bf16:
        masters = params
    optimizer = torch.optim.AdamW(masters, lr=o["learningRate"], betas=tuple(o["betas"]),
                                  eps=o["eps"], weight_decay=o["weightDecay"])
    records, steps = [], 0
    for i, batch in enumerate(batches):
        total, dice, focal, skeleton = losses(model, batch, o)
        (total / o["gradientAccumulation"]).backward()
        if bf16:
            for p, m in zip(params, masters):
                if p.grad is not None:
                    m.grad = p.grad.float() if m.grad is None else m.grad + p.grad.float()
                    p.grad = None
        lr = learning_rate(o, steps)
        if (i + 1) % o["gradientAccumulation"] == 0:
            torch.nn.utils.clip_grad_norm_(masters, o["maxGradNorm"])
            for group in optimizer.param_groups:
                group["lr"] = lr
            optimizer.step()
            optimizer.zero_grad()
            if bf16:
                with torch.no_grad():
                    for p, m in zip(params, masters):
                        p.copy_(m)
            steps += 1
        records.append({"loss": total.item(), "dice": dice.item(), "focal": focal.item(),
                        "skeleton": skeleton.item(), "learningRate": lr})
    out = {"steps": records,
           "parameters": {n: m.detach().flatten().tolist() for n, m in zip(names, masters)},
           "moduleParameters": {
               n: p.detach().float().flatten().tolist() for n, p in zip(names, params)
           }}
    json.dump(out, open(out_path, "w"))


if __name__ == "__main__":
    main(*sys.argv[1:5])
