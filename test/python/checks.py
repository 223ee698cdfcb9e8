"""Python-side checks of the exporter, run by test/export.test.ts (one sub-command per check):

    /usr/bin/python3 test/python/checks.py <check> [args]

Each prints one JSON object on success and exits 1 with the failed assertion on stderr.  The
expectations are computed here independently of the package: parameter counts from the config
by hand-written formulas, key shapes from the fixture derived from the official code, resizing
from a numpy implementation of antialiased bilinear filtering.
"""

import json
import os
import re
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "scripts"))

from crackseg_sam2.checkpoint import (  # noqa: E402
    MEMORY_PREFIXES,
    CheckpointError,
    load_official,
    read_state_dict,
)
from crackseg_sam2.configs import get_config  # noqa: E402
from crackseg_sam2.export import export  # noqa: E402
from crackseg_sam2.model import Sam2ImageModel  # noqa: E402

FIXTURE = os.path.join(HERE, "..", "fixtures", "sam2.1-image-keys.json")
OFFICIAL = ("tiny", "small", "base_plus", "large")


# ---------------------------------------------------------------- independent expectations


def _lin(i, o):
    return i * o + o


def _blocks(cfg):
    """(dim_in, dim_out) of every trunk block, from the config."""
    t = cfg["trunk"]
    out, dim = [], t["embed_dim"]
    for s, n in enumerate(t["stages"]):
        for b in range(n):
            dim_out = int(dim * t["dim_mul"]) if (s > 0 and b == 0) else dim
            out.append((dim, dim_out))
            dim = dim_out
    return out


def expected_counts(cfg, strategy, r):
    """(total parameters, LoRA parameters, number of LoRA targets), by hand from the config."""
    t, d = cfg["trunk"], cfg["neck"]["d_model"]
    e0, w0, bkg = t["embed_dim"], t["window_spec"][0], t["window_pos_embed_bkg_spatial_size"]
    total = 3 * 49 * e0 + e0 + e0 * bkg[0] * bkg[1] + e0 * w0 * w0
    stage_dims = []
    for i, (di, do) in enumerate(_blocks(cfg)):
        h = int(do * t["mlp_ratio"])
        total += 2 * di + _lin(di, 3 * do) + _lin(do, do) + 2 * do + _lin(do, h) + _lin(h, do)
        if di != do:
            total += _lin(di, do)
    for s in range(len(t["stages"])):
        stage_dims.append(e0 * 2**s)
    total += sum(_lin(c, d) for c in stage_dims)  # neck
    m = cfg["prompt"]["mask_in_chans"]
    total += 6 * d  # 4 point embeddings, not-a-point, no-mask
    total += (4 * (m // 4) + m // 4) + 2 * (m // 4) + (4 * (m // 4) * m + m) + 2 * m + _lin(m, d)
    dec = cfg["decoder"]
    half, mlp, depth = d // dec["attention_downsample_rate"], dec["transformer_mlp_dim"], dec[
        "transformer_depth"
    ]
    self_attn = 4 * _lin(d, d)
    cross = 3 * _lin(d, half) + _lin(half, d)
    total += depth * (self_attn + 2 * cross + 8 * d + _lin(d, mlp) + _lin(mlp, d))
    total += cross + 2 * d  # final attention + norm
    total += 6 * d  # iou token, 4 mask tokens, object-score token
    total += (4 * d * (d // 4) + d // 4) + 2 * (d // 4) + (4 * (d // 4) * (d // 8) + d // 8)
    total += _lin(d, d // 8) + _lin(d, d // 4)  # conv_s0, conv_s1
    total += 4 * (2 * _lin(d, d) + _lin(d, d // 8))  # hypernetwork MLPs
    ih = dec["iou_head_hidden_dim"]
    total += _lin(d, ih) + _lin(ih, ih) + _lin(ih, 4)
    total += 2 * _lin(d, d) + _lin(d, 1)  # object-score head
    total += d  # no_mem_embed

    lora, targets = 0, 0
    if strategy in ("A", "B", "C"):
        lora += depth * (4 * r * 2 * d + 2 * (3 * r * (d + half) + r * (half + d)))
        lora += 3 * r * (d + half) + r * (half + d)
        targets += 4 * (3 * depth + 1)
    if strategy in ("B", "C"):
        for di, do in _blocks(cfg):
            lora += r * (di + 3 * do) + r * (2 * do)
            targets += 2
    if strategy == "C":
        for di, do in _blocks(cfg):
            lora += 2 * r * (do + int(do * t["mlp_ratio"]))
            targets += 2
        lora += depth * 2 * r * (d + mlp)
        targets += 2 * depth
        # decoder MLP heads: 4 hypernetwork MLPs d->d->d->d/8, IoU head d->ih->ih->4,
        # object-score head d->d->d->1
        lora += 4 * r * (2 * d + 2 * d + d + d // 8)
        lora += r * (d + ih) + r * (2 * ih) + r * (ih + 4)
        lora += r * (2 * d + 2 * d + d + 1)
        targets += 4 * 3 + 3 + 3
    return total + lora, lora, targets


def resize_aa_numpy(img, out_h, out_w):
    """Antialiased bilinear (triangle filter, widened by the shrink factor) resize of a float
    [C, H, W] array, separable, with edge weights renormalised."""

    def weights(n_in, n_out):
        scale = n_in / n_out
        support = max(scale, 1.0)
        mat = np.zeros((n_out, n_in))
        for i in range(n_out):
            centre = (i + 0.5) * scale
            lo = max(int(centre - support + 0.5), 0)
            hi = min(int(centre + support + 0.5), n_in)
            for j in range(lo, hi):
                mat[i, j] = max(0.0, 1.0 - abs((j + 0.5 - centre) / support))
            mat[i] /= mat[i].sum()
        return mat

    wy, wx = weights(img.shape[1], out_h), weights(img.shape[2], out_w)
    return np.matmul(np.matmul(wy, img), wx.T)


# ---------------------------------------------------------------- helpers


def load(path):
    files = {"metadata.json": ""}
    model = torch.jit.load(path, _extra_files=files)
    return model, json.loads(files["metadata.json"])


def inputs(size, seed=0, b=2, n=5, h=300, w=200):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (b, 3, h, w), dtype=torch.uint8, generator=g)
    coords = torch.rand(n, 2, 2, generator=g) * size
    labels = torch.tensor([[2, 3], [1, -1], [1, 0], [2, 3], [0, 1]])[:n]
    index = torch.tensor([0, 1, 1, 0, 1])[:n] % b
    mask = torch.randn(n, 1, size // 4, size // 4, generator=g)
    return images, coords, labels, index, mask


def run_all(model, size):
    """Every output of the interface on fixed inputs, as a list of tensors."""
    images, coords, labels, index, mask = inputs(size)
    with torch.no_grad():
        emb, h0, h1 = model.encode_image(images)
        outs = [emb, h0, h1]
        outs += list(model.decode(emb, h0, h1, coords, labels, index, None, True))
        outs += list(model.decode(emb, h0, h1, coords, labels, index, mask, False))
        outs += list(model(images, coords, labels, index))
    return outs


def max_diff(a, b):
    return max(float((x - y).abs().max()) for x, y in zip(a, b))


def rel_diff(a, b):
    """max |a - b| / max(1, max |b|), the worst over paired tensors (b is the reference)."""
    return max(
        float((x - y).abs().max()) / max(1.0, float(y.abs().max())) for x, y in zip(a, b)
    )


def set_lora_b(model, seed):
    g = torch.Generator().manual_seed(seed)
    n = 0
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("lora_B"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
                n += 1
    return n


# ---------------------------------------------------------------- checks


def check_model(path, config, strategy, rank, alpha, dropout, seed):
    """An exported file: metadata, attributes, output shapes, counts, gradient flow."""
    rank, alpha, dropout, seed = int(rank), float(alpha), float(dropout), int(seed)
    model, meta = load(path)
    cfg = get_config(config)
    s = cfg["image_size"]
    d = cfg["neck"]["d_model"]
    total, lora, ntargets = expected_counts(cfg, strategy, rank)
    assert meta["format"] == "crackseg-sam2-image" and meta["format_version"] == 1, meta
    assert meta["config_name"] == config and meta["config"] == cfg, "config in metadata"
    assert meta["image_size"] == s and meta["mask_size"] == s // 4, "sizes in metadata"
    assert meta["lora_strategy"] == strategy and meta["lora_rank"] == rank
    assert meta["lora_alpha"] == alpha and meta["lora_dropout"] == dropout
    assert meta["seed"] == seed and meta["checkpoint_sha256"] is None
    assert meta["torch_version"] == torch.__version__
    assert len(meta["lora_targets"]) == ntargets, (len(meta["lora_targets"]), ntargets)
    assert meta["total_parameters"] == total, (meta["total_parameters"], total)
    assert meta["trainable_parameters"] == lora, (meta["trainable_parameters"], lora)
    assert model.image_size == s and model.lora_merged is False

    params = dict(model.named_parameters())
    assert sum(p.numel() for p in params.values()) == total
    assert sum(p.numel() for p in params.values() if p.requires_grad) == lora
    for name in meta["lora_targets"]:
        assert params[name + ".weight"].requires_grad is False, name
        assert params[name + ".lora_A"].shape == (rank, params[name + ".weight"].shape[1])
        assert params[name + ".lora_B"].shape == (params[name + ".weight"].shape[0], rank)
        assert float(params[name + ".lora_B"].abs().max()) == 0.0, name

    images, coords, labels, index, mask = inputs(s)
    n = coords.shape[0]
    emb, h0, h1 = model.encode_image(images)
    assert emb.shape == (2, d, s // 16, s // 16), emb.shape
    assert h0.shape == (2, d // 8, s // 4, s // 4) and h1.shape == (2, d // 4, s // 8, s // 8)
    m, iou, obj = model.decode(emb, h0, h1, coords, labels, index, mask, True)
    assert m.shape == (n, 3, s // 4, s // 4) and iou.shape == (n, 3) and obj.shape == (n, 1)
    assert float(iou.min()) >= 0 and float(iou.max()) <= 1, "IoU head ends in a sigmoid"
    m, iou, obj = model.decode(emb, h0, h1, coords, labels, index, None, False)
    assert m.shape == (n, 1, s // 4, s // 4) and iou.shape == (n, 1) and obj.shape == (n, 1)

    grads, multimask_only = 0, []
    if lora:
        model.train()
        set_lora_b(model, 1)
        m, iou, obj = model(images, coords, labels, index)
        assert m.shape == (n, 1, s // 4, s // 4)
        (m.mean() + iou.mean() + obj.mean()).backward()
        # forward (single mask, train mode) uses mask token 0 only: the hypernetwork MLPs of
        # the three multimask tokens do not reach its outputs
        unused = re.compile(r"sam_mask_decoder\.output_hypernetworks_mlps\.[1-9]\d*\.")
        for name, p in model.named_parameters():
            if "lora_" in name and unused.match(name):
                assert p.grad is None or float(p.grad.abs().sum()) == 0, name
                multimask_only.append(name)
            elif "lora_" in name:
                assert p.grad is not None and float(p.grad.abs().sum()) > 0, name
                grads += 1
            else:
                assert p.grad is None, name
        if multimask_only:  # they train through decode(..., multimask=True)
            model.zero_grad()
            emb, h0, h1 = model.encode_image(images)
            m, iou, obj = model.decode(emb, h0, h1, coords, labels, index, None, True)
            (m.mean() + iou.mean()).backward()
            params = dict(model.named_parameters())
            for name in multimask_only:
                assert float(params[name].grad.abs().sum()) > 0, name
    return {
        "total": total,
        "lora": lora,
        "targets": ntargets,
        "lora_params_with_grad": grads,
        "lora_params_multimask_only": len(multimask_only),
    }


def check_lora(config="test", rank=4, alpha=8.0, seed=3):
    """LoRA A/B/C with B = 0 equal `none`; random B differs; merge equals unmerged; idempotent."""
    rank, alpha, seed = int(rank), float(alpha), int(seed)
    size = get_config(config)["image_size"]
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        ref = None
        for strategy in ("none", "A", "B", "C"):
            path = os.path.join(tmp, f"{strategy}.pt")
            export(path, config=config, seed=seed, lora=strategy, rank=rank, alpha=alpha)
            model, meta = load(path)
            outs = run_all(model, size)
            if ref is None:
                ref = outs
                continue
            same = max_diff(ref, outs)
            assert same == 0.0, f"{strategy} with lora_B = 0 differs from none by {same}"
            assert set_lora_b(model, 7) == len(meta["lora_targets"])
            changed = run_all(model, size)
            differs = max_diff(ref, changed)
            assert differs > 1e-3, f"{strategy}: random lora_B does not change the outputs"
            weights_before = {k: v.clone() for k, v in model.state_dict().items()}
            model.merge_lora()
            model.merge_lora()  # idempotent
            assert model.lora_merged is True
            merged = run_all(model, size)
            merge_diff = rel_diff(merged, changed)
            assert merge_diff <= 1e-5, f"{strategy}: merged differs by {merge_diff} (relative)"
            flags = [m.merged for n, m in model.named_modules() if n in meta["lora_targets"]]
            assert len(flags) == len(meta["lora_targets"]) and all(flags), "merge missed some"
            # a merged model skips the adapters: nothing in its graph requires grad
            model.train()
            images, coords, labels, index, _ = inputs(size)
            m, iou, obj = model(images, coords, labels, index)
            assert not m.requires_grad, "merged forward should not reach the adapters"
            try:
                (m.mean() + iou.mean() + obj.mean()).backward()
                raise AssertionError("backward through a merged model should fail")
            except RuntimeError as err:
                backward_error = str(err).split("\n")[0]
            model.eval()
            moved = [
                k
                for k, v in model.state_dict().items()
                if not torch.equal(v, weights_before[k])
            ]
            assert sorted(moved) == sorted(t + ".weight" for t in meta["lora_targets"]), moved
            model.unmerge_lora()
            model.unmerge_lora()
            restored = max(
                float((v - weights_before[k]).abs().max()) for k, v in model.state_dict().items()
            )
            assert restored < 1e-5, f"{strategy}: unmerge leaves {restored}"
            out[strategy] = {
                "lora_b_zero_diff": same,
                "random_b_diff": differs,
                "merge_diff": merge_diff,
                "merged_backward_error": backward_error,
                "unmerge_weight_diff": restored,
            }
    return out


class _RunsCode:
    """Pickles as a call to os.makedirs(path): loading it without weights_only runs code."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.makedirs, (self.path,))


def _random_official_sd(config, with_memory):
    """A fake official checkpoint for `config` from the fixture's key list (for official
    configs) or our model's (for `test`), plus the fixture's memory-path keys."""
    with open(FIXTURE) as f:
        fixture = json.load(f)
    g = torch.Generator().manual_seed(5)
    if config in fixture["image_keys"]:
        shapes = fixture["image_keys"][config]
    else:
        state = Sam2ImageModel(get_config(config)).state_dict()
        shapes = {k: list(v.shape) for k, v in state.items()}
    sd = {k: torch.randn(v, generator=g) for k, v in shapes.items()}
    if with_memory:
        for k, v in fixture["memory_path_keys"]["tiny"].items():
            sd[k] = torch.zeros(v)
    return sd, fixture


def check_checkpoint():
    """Loading a fake official checkpoint; every kind of mismatch is an error naming the key."""
    sd, fixture = _random_official_sd("test", True)
    n_memory = len(fixture["memory_path_keys"]["tiny"])
    # the runtime memory prefixes are exactly the ones derived from the official code
    assert sorted(MEMORY_PREFIXES) == sorted(fixture["memory_path_prefixes"]), MEMORY_PREFIXES
    model = Sam2ImageModel(get_config("test"))
    skipped = load_official(model, {"model": sd})
    assert len(skipped) == n_memory and all(
        k.startswith(tuple(fixture["memory_path_prefixes"])) for k in skipped
    )
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in sd.items() if k in loaded)

    def fails(mutated, expect):
        try:
            load_official(Sam2ImageModel(get_config("test")), {"model": mutated})
        except CheckpointError as err:
            assert expect in str(err), (expect, str(err))
            return str(err)
        raise AssertionError(f"no error for {expect}")

    key = "sam_mask_decoder.transformer.layers.1.cross_attn_token_to_image.k_proj.weight"
    missing = dict(sd)
    del missing[key]
    errors = [fails(missing, "missing image-path keys: " + key)]
    extra = dict(sd, **{"sam_mask_decoder.extra_head.weight": torch.zeros(3)})
    errors.append(fails(extra, "unexpected keys: sam_mask_decoder.extra_head.weight"))
    shaped = dict(sd, **{key: torch.zeros(3, 3)})
    errors.append(fails(shaped, key + ": checkpoint [3, 3]"))

    # file form, with the {"model": ...} wrapper, through the exporter (sha256 recorded)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = os.path.join(tmp, "fake.pt")
        torch.save({"model": sd}, ckpt)
        out = os.path.join(tmp, "m.pt")
        built = export(out, config="test", checkpoint=ckpt, lora="A", rank=2, alpha=2.0)
        meta = built["metadata"]
        assert meta["skipped_checkpoint_keys"] == n_memory
        assert len(meta["checkpoint_sha256"]) == 64
        model, _ = load(out)
        params = dict(model.named_parameters())
        assert torch.equal(params[key], sd[key])
        lora_a = "sam_mask_decoder.transformer.layers.1.cross_attn_token_to_image.k_proj.lora_A"
        assert lora_a in params

        # a pickle that would run code on loading is refused (weights_only), and runs nothing
        marker = os.path.join(tmp, "ran")
        evil = os.path.join(tmp, "evil.pt")
        torch.save({"model": sd, "hook": _RunsCode(marker)}, evil)
        try:
            read_state_dict(evil)
            raise AssertionError("a checkpoint with a code-running object was loaded")
        except CheckpointError as err:
            refused = str(err)
        assert "weights_only" in refused and not os.path.exists(marker), refused
        errors.append(refused)

    # official configs: our keys and shapes are exactly the official image-path keys, and a
    # checkpoint with the official key list loads (no forward pass: these models are large)
    for config in OFFICIAL:
        model = Sam2ImageModel(get_config(config))
        ours = {k: list(v.shape) for k, v in model.state_dict().items()}
        assert ours == fixture["image_keys"][config], f"{config}: keys or shapes differ"
        total, _, _ = expected_counts(get_config(config), "none", 1)
        assert sum(p.numel() for p in model.parameters()) == total, config
        # the fixture's own count (parameters = all keys but the gaussian-matrix buffer)
        fixture_total = sum(
            int(np.prod(v))
            for k, v in fixture["image_keys"][config].items()
            if not k.endswith("positional_encoding_gaussian_matrix")
        )
        assert fixture_total == total, (config, fixture_total, total)
        if config == "tiny":
            sd, _ = _random_official_sd(config, True)
            assert len(load_official(model, {"model": sd})) == n_memory
    return {"skipped": len(skipped), "errors": errors}


def check_preprocess(config="test"):
    """encode_image's resize + normalisation against numpy, for shrinking and enlarging."""
    model = torch.jit.script(Sam2ImageModel(get_config(config)))
    s = model.image_size
    mean = np.array([0.485, 0.456, 0.406])[:, None, None]
    std = np.array([0.229, 0.224, 0.225])[:, None, None]
    g = torch.Generator().manual_seed(11)
    out = {}
    for h, w in ((300, 700), (200, 130), (s, s)):
        img = torch.randint(0, 256, (2, 3, h, w), dtype=torch.uint8, generator=g)
        got = model.preprocess(img).numpy()
        for b in range(2):
            ref = (resize_aa_numpy(img[b].numpy().astype(np.float64) / 255.0, s, s) - mean) / std
            diff = float(np.abs(got[b] - ref).max())
            assert diff < 1e-4, f"{h}x{w}: {diff}"
            out[f"{h}x{w}"] = max(out.get(f"{h}x{w}", 0.0), diff)
    return out


def check_bf16(config="test", strategy="C"):
    """The scripted model cast to bf16 (all of it: weights, buffers, activations) runs every method
    and the backward pass on the CPU, stays bf16 end to end, and stays near the fp32 outputs."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m.pt")
        export(path, config=config, seed=3, lora=strategy, rank=4, alpha=8.0)
        fp32, _ = load(path)
        bf16, _ = load(path)
    set_lora_b(fp32, 5)
    set_lora_b(bf16, 5)
    bf16.to(torch.bfloat16)
    fp32.eval()
    bf16.eval()
    size = fp32.image_size
    reference, low = run_all(fp32, size), run_all(bf16, size)
    dtypes = sorted({str(t.dtype) for t in low})
    assert dtypes == ["torch.bfloat16"], f"bf16 outputs: {dtypes}"
    # Logits, IoU and object scores: bf16 keeps ~3 significant digits per op.
    worst = rel_diff([t.float() for t in low], reference)
    assert worst < 0.1, f"bf16 vs fp32 relative difference {worst}"
    bf16.train()
    images, coords, labels, index, _ = inputs(size)
    logits, iou, objects = bf16(images, coords, labels, index)
    (logits.float().square().mean() + iou.float().mean() + objects.float().mean()).backward()
    trained = [(n, p) for n, p in bf16.named_parameters() if p.requires_grad]
    missing = [n for n, p in trained if p.grad is None or p.grad.dtype != torch.bfloat16]
    assert trained and not missing, f"no bf16 gradient for {missing[:3]}"
    return {"outputs": len(low), "relative_difference": worst, "trained_tensors": len(trained)}


CHECKS = {
    "bf16": check_bf16,
    "model": check_model,
    "lora": check_lora,
    "checkpoint": check_checkpoint,
    "preprocess": check_preprocess,
}

if __name__ == "__main__":
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    name = sys.argv[1]
    print(json.dumps(CHECKS[name](*sys.argv[2:])))
