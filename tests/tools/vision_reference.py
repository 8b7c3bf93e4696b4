#!/usr/bin/python3
"""An independent reference (torch, float32) for the vision encoder of a LLaVA-style model.

    vision_reference.py MODEL_DIR --pixels FILE --out FILE

Follows HF transformers' SiglipVisionModel (no class token, learned absolute
position embeddings, pre-LN encoder layers, post_layernorm) and LLaVA's
LlavaMultiModalProjector (linear_1, act, linear_2):

  patches  = conv2d(pixels, patch_embedding, stride=patch_size)  -> [D, g, g]
  x        = patches.flatten(1).T + position_embedding           -> [g*g, D]
  each layer: x = x + out_proj(MHA(layer_norm1(x)));  x = x + fc2(act(fc1(layer_norm2(x))))
  x        = post_layernorm(x);  out = linear_2(projector_act(linear_1(x)))

"gelu" is the exact erf GELU; "gelu_pytorch_tanh" / "gelu_new" the tanh
approximation. Everything is computed in float32, whatever the stored dtype.

--pixels: raw little-endian float32, [3, image_size, image_size] (CHW),
already normalised. --out: raw little-endian float32 [num_patches, text_hidden].
Prints {"tokens": num_patches, "hidden": text_hidden} on stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from typing import Dict, Optional

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io as st  # noqa: E402

ACTIVATIONS = {"gelu": "none", "gelu_pytorch_tanh": "tanh", "gelu_new": "tanh"}


def approximate(name: str) -> str:
    if name not in ACTIVATIONS:
        raise SystemExit(f"unsupported activation {name!r}")
    return ACTIVATIONS[name]


class VisionModel:
    def __init__(self, model_dir: str):
        with open(os.path.join(model_dir, "config.json")) as f:
            cfg = json.load(f)
        if not cfg.get("vision_config"):
            raise SystemExit(f"{model_dir}: config.json has no vision_config")
        self.cfg = cfg["vision_config"]
        self.text_hidden: int = cfg["hidden_size"]
        self.act = approximate(self.cfg.get("hidden_act", "gelu_pytorch_tanh"))
        self.projector_act = approximate(cfg.get("projector_hidden_act", "gelu"))
        self.eps: float = self.cfg.get("layer_norm_eps", 1e-6)
        all_weights = st.read_model(model_dir)
        self.w: Dict[str, torch.Tensor] = {
            k: v.float() for k, v in all_weights.items()
            if k.startswith("vision_tower.") or k.startswith("multi_modal_projector.")}

    def get(self, name: str) -> torch.Tensor:
        if name not in self.w:
            raise SystemExit(f"missing tensor {name}")
        return self.w[name]

    @property
    def image_size(self) -> int:
        return self.cfg["image_size"]

    @property
    def num_patches(self) -> int:
        return (self.cfg["image_size"] // self.cfg["patch_size"]) ** 2


def layer_norm(x: torch.Tensor, m: VisionModel, prefix: str) -> torch.Tensor:
    return F.layer_norm(x, (x.shape[-1],), m.get(prefix + ".weight"), m.get(prefix + ".bias"), m.eps)


def dense(x: torch.Tensor, m: VisionModel, prefix: str) -> torch.Tensor:
    return F.linear(x, m.get(prefix + ".weight"), m.get(prefix + ".bias"))


def self_attention(x: torch.Tensor, m: VisionModel, prefix: str) -> torch.Tensor:
    """Multi-head attention over all patches (no mask); x [N, D]."""
    n, d = x.shape
    heads = m.cfg["num_attention_heads"]
    hd = d // heads
    q, k, v = (dense(x, m, f"{prefix}.{p}_proj").reshape(n, heads, hd).permute(1, 0, 2) for p in "qkv")
    weights = torch.softmax(torch.einsum("hqd,hkd->hqk", q, k) / math.sqrt(hd), dim=-1)
    ctx = torch.einsum("hqk,hkd->qhd", weights, v).reshape(n, d)
    return dense(ctx, m, f"{prefix}.out_proj")


def encode(m: VisionModel, pixels: torch.Tensor) -> torch.Tensor:
    """pixels [3, S, S] float32 -> [num_patches, text_hidden] float32."""
    p = m.cfg["patch_size"]
    emb = "vision_tower.vision_model.embeddings."
    x = pixels.float()[None]
    # The convolutional stem, if any: 3x3 convolutions (padding 1) with the
    # vision activation; the patch embedding then strides p / (their strides).
    strides = m.cfg.get("stem_strides", [])
    for j, stride in enumerate(strides):
        x = F.gelu(F.conv2d(x, m.get(f"{emb}stem.{j}.weight"), m.get(f"{emb}stem.{j}.bias"), stride=stride, padding=1),
                   approximate=m.act)
    k = p // math.prod(strides)
    patches = F.conv2d(x, m.get(emb + "patch_embedding.weight"), m.get(emb + "patch_embedding.bias"), stride=k)[0]
    x = patches.flatten(1).transpose(0, 1) + m.get(emb + "position_embedding.weight")
    for i in range(m.cfg["num_hidden_layers"]):
        layer = f"vision_tower.vision_model.encoder.layers.{i}"
        x = x + self_attention(layer_norm(x, m, layer + ".layer_norm1"), m, layer + ".self_attn")
        hidden = F.gelu(dense(layer_norm(x, m, layer + ".layer_norm2"), m, layer + ".mlp.fc1"), approximate=m.act)
        x = x + dense(hidden, m, layer + ".mlp.fc2")
    x = layer_norm(x, m, "vision_tower.vision_model.post_layernorm")
    x = F.gelu(dense(x, m, "multi_modal_projector.linear_1"), approximate=m.projector_act)
    return dense(x, m, "multi_modal_projector.linear_2")


def read_pixels(path: str, image_size: int) -> torch.Tensor:
    values = np.fromfile(path, dtype="<f4")
    if values.size != 3 * image_size * image_size:
        raise SystemExit(f"{path}: {values.size} floats, expected 3*{image_size}*{image_size}")
    return torch.from_numpy(values.astype(np.float32)).reshape(3, image_size, image_size)


def main(argv: Optional[list] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_dir")
    ap.add_argument("--pixels", required=True, help="raw float32 CHW pixels")
    ap.add_argument("--out", required=True, help="raw float32 [num_patches, text_hidden] output")
    a = ap.parse_args(argv)
    torch.set_grad_enabled(False)
    m = VisionModel(a.model_dir)
    out = encode(m, read_pixels(a.pixels, m.image_size))
    out.contiguous().numpy().astype("<f4").tofile(a.out)
    json.dump({"tokens": out.shape[0], "hidden": out.shape[1]}, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
