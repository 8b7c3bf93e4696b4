#!/usr/bin/python3
"""An independent reference forward pass (torch, float32) for HF-layout models.

    reference_forward.py MODEL_DIR --ids 1,2,3 [--out-logits FILE] [--greedy N]
        [--stop-at-eos] [--json]

Follows the HF transformers semantics of Qwen3ForCausalLM, Qwen2ForCausalLM
and LlamaForCausalLM: RMSNorm in float32 then times the weight; rotate-half
RoPE with inv_freq = 1 / theta^(arange(0, d, 2) / d), adjusted as HF's
`_compute_llama3_parameters` for rope_scaling "llama3"; Qwen3's q_norm/k_norm
per head before RoPE; Qwen2's q/k/v biases (and Llama/Qwen3 `attention_bias`,
which also biases o_proj); GQA by repeating kv heads; causal softmax attention
with scale 1/sqrt(head_dim); SwiGLU MLP; final norm; lm_head or tied embedding.
Everything is computed in float32, whatever the stored dtype.

Prints one JSON object on stdout:
  always          {"n_tokens": T, "vocab": V, "argmax": [per-position argmax]}
  --out-logits F  writes every position's logits to F as raw little-endian
                  float32, row-major [T, V]
  --greedy N      adds "tokens": the N greedily generated ids (argmax, first
                  index on ties; the full forward is recomputed each step),
                  fewer with --stop-at-eos if an eos id is generated (included)
  --json          adds "logits": [[...] per position] (small models only)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from dataclasses import dataclass
from typing import Dict, List, Optional

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io as st  # noqa: E402


@dataclass
class Config:
    arch: str
    vocab: int
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    eps: float
    theta: float
    rope_scaling: Optional[dict]
    tie: bool
    qk_norm: bool
    qkv_bias: bool
    o_bias: bool
    eos: List[int]


def load_config(model_dir: str) -> Config:
    with open(os.path.join(model_dir, "config.json")) as f:
        c = json.load(f)
    arch = c["architectures"][0]
    if arch not in ("Qwen3ForCausalLM", "Qwen2ForCausalLM", "LlamaForCausalLM"):
        raise SystemExit(f"unsupported architecture {arch}")
    if c.get("hidden_act", "silu") != "silu":
        raise SystemExit("only hidden_act silu is supported")
    heads = c["num_attention_heads"]
    attention_bias = bool(c.get("attention_bias", False))
    eos = c.get("eos_token_id")
    eos = [] if eos is None else (eos if isinstance(eos, list) else [eos])
    rope_scaling = c.get("rope_scaling")
    if rope_scaling is not None:
        kind = rope_scaling.get("rope_type", rope_scaling.get("type"))
        if kind == "default":
            rope_scaling = None
        elif kind != "llama3":
            raise SystemExit(f"unsupported rope_scaling {kind}")
    return Config(
        arch=arch,
        vocab=c["vocab_size"],
        hidden=c["hidden_size"],
        layers=c["num_hidden_layers"],
        heads=heads,
        kv_heads=c.get("num_key_value_heads") or heads,
        head_dim=c.get("head_dim") or c["hidden_size"] // heads,
        eps=c.get("rms_norm_eps", 1e-6),
        theta=c.get("rope_theta", 10000.0),
        rope_scaling=rope_scaling,
        tie=bool(c.get("tie_word_embeddings", False)),
        qk_norm=arch == "Qwen3ForCausalLM",
        qkv_bias=arch == "Qwen2ForCausalLM" or attention_bias,
        o_bias=arch != "Qwen2ForCausalLM" and attention_bias,
        eos=eos,
    )


class Model:
    def __init__(self, model_dir: str):
        self.cfg = load_config(model_dir)
        self.w: Dict[str, torch.Tensor] = {k: v.float() for k, v in st.read_model(model_dir).items()}
        self.inv_freq = rope_inv_freq(self.cfg)

    def get(self, name: str) -> torch.Tensor:
        if name not in self.w:
            raise SystemExit(f"missing tensor {name}")
        return self.w[name]

    def opt(self, name: str, present: bool) -> Optional[torch.Tensor]:
        return self.get(name) if present else None


def rope_inv_freq(cfg: Config) -> torch.Tensor:
    d = cfg.head_dim
    inv_freq = 1.0 / (cfg.theta ** (torch.arange(0, d, 2, dtype=torch.int64).float() / d))
    rs = cfg.rope_scaling
    if rs is None:
        return inv_freq
    # HF _compute_llama3_parameters: long wavelengths slowed by `factor`,
    # short ones kept, the band between interpolated smoothly.
    factor = rs["factor"]
    low, high = rs["low_freq_factor"], rs["high_freq_factor"]
    old_ctx = rs["original_max_position_embeddings"]
    low_freq_wavelen = old_ctx / low
    high_freq_wavelen = old_ctx / high
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    smooth = (old_ctx / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = ~(wavelen < high_freq_wavelen) & ~(wavelen > low_freq_wavelen)
    return torch.where(medium, smoothed, scaled)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    x = x.float()
    return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def linear(x: torch.Tensor, w: torch.Tensor, b: Optional[torch.Tensor] = None) -> torch.Tensor:
    y = x @ w.t()
    return y + b if b is not None else y


def forward(m: Model, ids: List[int], inject=()) -> torch.Tensor:
    """Logits [T, vocab] (float32) for every position of `ids`. `inject` is a
    list of (offset, rows [n, hidden]): input embeddings that replace the token
    embeddings at positions offset..offset+n (an encoded image)."""
    c = m.cfg
    T = len(ids)
    if any(i < 0 or i >= c.vocab for i in ids):
        raise SystemExit(f"token ids must be in [0, {c.vocab})")
    x = m.get("model.embed_tokens.weight")[torch.tensor(ids, dtype=torch.long)].clone()
    for offset, rows in inject:
        x[offset:offset + rows.shape[0]] = rows
    pos = torch.arange(T, dtype=torch.float32)
    freqs = pos[:, None] * m.inv_freq[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos()[:, None, :], emb.sin()[:, None, :]  # [T, 1, hd]
    mask = torch.full((T, T), float("-inf")).triu(1)
    n_rep = c.heads // c.kv_heads
    for i in range(c.layers):
        p = f"model.layers.{i}."
        h = rms_norm(x, m.get(p + "input_layernorm.weight"), c.eps)
        q = linear(h, m.get(p + "self_attn.q_proj.weight"), m.opt(p + "self_attn.q_proj.bias", c.qkv_bias))
        k = linear(h, m.get(p + "self_attn.k_proj.weight"), m.opt(p + "self_attn.k_proj.bias", c.qkv_bias))
        v = linear(h, m.get(p + "self_attn.v_proj.weight"), m.opt(p + "self_attn.v_proj.bias", c.qkv_bias))
        q = q.view(T, c.heads, c.head_dim)
        k = k.view(T, c.kv_heads, c.head_dim)
        v = v.view(T, c.kv_heads, c.head_dim)
        if c.qk_norm:
            q = rms_norm(q, m.get(p + "self_attn.q_norm.weight"), c.eps)
            k = rms_norm(k, m.get(p + "self_attn.k_norm.weight"), c.eps)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        # [heads, T, hd]; kv head j serves query heads j*n_rep .. j*n_rep+n_rep-1.
        q, k, v = q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1)
        k = k.repeat_interleave(n_rep, dim=0)
        v = v.repeat_interleave(n_rep, dim=0)
        scores = (q @ k.transpose(1, 2)) / math.sqrt(c.head_dim) + mask
        attn = torch.softmax(scores, dim=-1) @ v  # [heads, T, hd]
        attn = attn.transpose(0, 1).reshape(T, c.heads * c.head_dim)
        x = x + linear(attn, m.get(p + "self_attn.o_proj.weight"), m.opt(p + "self_attn.o_proj.bias", c.o_bias))
        h = rms_norm(x, m.get(p + "post_attention_layernorm.weight"), c.eps)
        gate = linear(h, m.get(p + "mlp.gate_proj.weight"))
        up = linear(h, m.get(p + "mlp.up_proj.weight"))
        x = x + linear(torch.nn.functional.silu(gate) * up, m.get(p + "mlp.down_proj.weight"))
    x = rms_norm(x, m.get("model.norm.weight"), c.eps)
    head = m.get("model.embed_tokens.weight") if c.tie else m.get("lm_head.weight")
    return x @ head.t()


def greedy(m: Model, ids: List[int], n: int, stop_at_eos: bool = False) -> List[int]:
    seq = list(ids)
    out: List[int] = []
    for _ in range(n):
        nxt = int(torch.argmax(forward(m, seq)[-1]))
        out.append(nxt)
        seq.append(nxt)
        if stop_at_eos and nxt in m.cfg.eos:
            break
    return out


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_dir")
    p.add_argument("--ids", required=True, help="comma-separated prompt token ids")
    p.add_argument("--out-logits", default=None)
    p.add_argument("--greedy", type=int, default=0)
    p.add_argument("--stop-at-eos", action="store_true")
    p.add_argument("--json", action="store_true")
    p.add_argument("--inject", action="append", default=[], metavar="OFFSET:FILE",
                   help="replace the input embeddings from OFFSET with the rows of FILE (raw float32 [n, hidden])")
    a = p.parse_args(argv)
    try:
        ids = [int(s) for s in a.ids.split(",") if s.strip()]
    except ValueError:
        p.error("--ids must be comma-separated integers")
    if not ids:
        p.error("--ids must name at least one token")
    torch.set_grad_enabled(False)
    m = Model(a.model_dir)
    inject = []
    for spec in a.inject:
        offset, path = spec.split(":", 1)
        rows = torch.from_numpy(np.fromfile(path, dtype="<f4").copy()).view(-1, m.cfg.hidden)
        inject.append((int(offset), rows))
    logits = forward(m, ids, inject)
    result: Dict[str, object] = {"n_tokens": logits.shape[0], "vocab": logits.shape[1],
                                 "argmax": [int(i) for i in logits.argmax(-1)]}
    if a.out_logits:
        logits.contiguous().numpy().astype("<f4").tofile(a.out_logits)
    if a.greedy > 0:
        result["tokens"] = greedy(m, ids, a.greedy, a.stop_at_eos)
    if a.json:
        result["logits"] = logits.tolist()
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
