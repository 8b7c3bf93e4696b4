#!/usr/bin/python3
"""Writes a random model in HF layout (config.json + safetensors) for tests and benchmarks.

    make_tiny_model.py OUT_DIR --arch qwen3|qwen2|llama [--vocab 512] [--hidden 64]
        [--layers 2] [--heads 4] [--kv-heads 2] [--head-dim N] [--intermediate 128]
        [--tie|--no-tie] [--dtype f32|bf16|f16] [--shards N] [--rope-scaling llama3]
        [--seed S] [--tokenizer-from DIR] [--max-pos 2048]
        [--vision [--vision-image-size 28] [--vision-patch 14] [--vision-hidden 32]
         [--vision-layers 2] [--vision-heads 4] [--vision-intermediate 64]
         [--vision-act gelu_pytorch_tanh|gelu] [--vision-projector-act gelu|gelu_pytorch_tanh]]

config.json uses the field names of the real Qwen3-0.6B, Qwen2.5 and
Llama-3.2 configs; the tensors have the real HF names. Weights are random but
every feature matters: matrices have std 1/sqrt(fan_in) (about 0.02 at real
sizes; large enough at tiny sizes that attention is far from uniform and the
logits vary visibly), norms are 1 + 0.1*randn, Qwen2 q/k/v biases are nonzero.
Each tensor is drawn from a generator seeded by (seed, tensor name), so the
values do not depend on --shards or on the order of writing.

--vision makes a LLaVA-style multimodal model (lib/model/vision_config.hpp):
config.json gains "vision_config" (a SigLIP-style ViT), "projector_hidden_act"
and the image token fields, and the weights gain `vision_tower.*` and
`multi_modal_projector.*`. The image token ids are the tokenizer's real
<|image_pad|>, <|vision_start|>, <|vision_end|> with --tokenizer-from, else
the ids just below bos/eos (vocab-3 image, vocab-5 start, vocab-4 end).

A Qwen3-0.6B-shaped model (about 1.2 GB in bf16) for benchmarks:
    make_tiny_model.py OUT --arch qwen3 --vocab 151936 --hidden 1024 --layers 28 \
        --heads 16 --kv-heads 8 --head-dim 128 --intermediate 3072 --tie --dtype bf16
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import zlib
from typing import Dict, List, Optional

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io as st  # noqa: E402

ARCHITECTURES = {"qwen3": "Qwen3ForCausalLM", "qwen2": "Qwen2ForCausalLM", "llama": "LlamaForCausalLM"}
TORCH_DTYPE_NAMES = {"f32": "float32", "bf16": "bfloat16", "f16": "float16"}
VISION_ACTS = ["gelu", "gelu_pytorch_tanh"]
VISION_TOKENS = ("<|image_pad|>", "<|vision_start|>", "<|vision_end|>")


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out_dir")
    p.add_argument("--arch", required=True, choices=sorted(ARCHITECTURES))
    p.add_argument("--vocab", type=int, default=None, help="vocab_size (default 512; with --tokenizer-from, "
                   "at least the tokenizer's size rounded up to a multiple of 128)")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--head-dim", type=int, default=None, help="default hidden/heads")
    p.add_argument("--intermediate", type=int, default=128)
    tie = p.add_mutually_exclusive_group()
    tie.add_argument("--tie", dest="tie", action="store_true", default=None)
    tie.add_argument("--no-tie", dest="tie", action="store_false")
    p.add_argument("--dtype", choices=sorted(TORCH_DTYPE_NAMES), default="f32")
    p.add_argument("--shards", type=int, default=1)
    p.add_argument("--rope-scaling", choices=["llama3"], default=None)
    p.add_argument("--rope-theta", type=float, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tokenizer-from", default=None, help="folder with tokenizer.json and tokenizer_config.json")
    p.add_argument("--max-pos", type=int, default=2048)
    p.add_argument("--boost", action="append", default=[], metavar="ID:SCALE",
                   help="scale lm_head row ID by SCALE (untied only), so that token comes up at random moments")
    p.add_argument("--open-think", action="store_true",
                   help="with --tokenizer-from (Qwen3): a template whose generation prompt opens <think>, "
                        "as Qwen3 Thinking-2507 does")
    v = p.add_argument_group("vision (LLaVA-style multimodal model)")
    v.add_argument("--vision", action="store_true", help="add a vision tower and projector")
    v.add_argument("--vision-image-size", type=int, default=28)
    v.add_argument("--vision-patch", type=int, default=14)
    v.add_argument("--vision-hidden", type=int, default=32)
    v.add_argument("--vision-layers", type=int, default=2)
    v.add_argument("--vision-heads", type=int, default=4)
    v.add_argument("--vision-intermediate", type=int, default=64)
    v.add_argument("--vision-act", choices=VISION_ACTS, default="gelu_pytorch_tanh")
    v.add_argument("--vision-stem", default="", help="stem channels, comma-separated (a 3x3 conv each)")
    v.add_argument("--vision-stem-strides", default="", help="one stride per stem conv, comma-separated")
    v.add_argument("--vision-projector-act", choices=VISION_ACTS, default="gelu")
    args = p.parse_args(argv)
    if args.tie is None:
        args.tie = args.arch == "qwen3"  # as Qwen3-0.6B; the others default to untied
    if args.head_dim is None:
        if args.hidden % args.heads:
            p.error("--hidden must be a multiple of --heads unless --head-dim is given")
        args.head_dim = args.hidden // args.heads
    if args.heads % args.kv_heads:
        p.error("--heads must be a multiple of --kv-heads")
    if args.head_dim % 2:
        p.error("--head-dim must be even")
    if args.shards < 1:
        p.error("--shards must be >= 1")
    try:
        args.boost = [(int(i), float(x)) for i, x in (b.split(":") for b in args.boost)]
    except ValueError:
        p.error("--boost takes ID:SCALE")
    if args.boost and args.tie:
        p.error("--boost needs --no-tie (it scales lm_head rows)")
    if args.open_think and not args.tokenizer_from:
        p.error("--open-think needs --tokenizer-from")
    if args.vision:
        for name in ("image_size", "patch", "hidden", "layers", "heads", "intermediate"):
            if getattr(args, "vision_" + name) < 1:
                p.error(f"--vision-{name.replace('_', '-')} must be >= 1")
        if args.vision_image_size % args.vision_patch:
            p.error("--vision-patch must divide --vision-image-size")
        if args.vision_hidden % args.vision_heads:
            p.error("--vision-heads must divide --vision-hidden")
        args.vision_stem = [int(c) for c in args.vision_stem.split(",") if c]
        args.vision_stem_strides = [int(c) for c in args.vision_stem_strides.split(",") if c]
        if len(args.vision_stem) != len(args.vision_stem_strides):
            p.error("--vision-stem-strides needs one stride per --vision-stem channel count")
        if args.vision_patch % math.prod(args.vision_stem_strides):
            p.error("the stem strides' product must divide --vision-patch")
    return args


# ---------------------------------------------------------------- tokenizer


def _token_content(value) -> Optional[str]:
    if isinstance(value, dict):
        return value.get("content")
    return value if isinstance(value, str) else None


def tokenizer_ids(tok_dir: str, arch: str) -> Dict[str, object]:
    """Copies nothing; returns the tokenizer's size and special ids as a config needs them."""
    with open(os.path.join(tok_dir, "tokenizer.json"), encoding="utf-8") as f:
        tok = json.load(f)
    with open(os.path.join(tok_dir, "tokenizer_config.json"), encoding="utf-8") as f:
        tok_cfg = json.load(f)
    ids: Dict[str, int] = dict(tok.get("model", {}).get("vocab", {}))
    for added in tok.get("added_tokens", []):
        ids[added["content"]] = added["id"]
    for key, added in (tok_cfg.get("added_tokens_decoder") or {}).items():
        ids[added["content"]] = int(key)
    size = max(ids.values()) + 1 if ids else 0

    def lookup(name: Optional[str]) -> Optional[int]:
        return ids.get(name) if name else None

    bos = lookup(_token_content(tok_cfg.get("bos_token")))
    eos = lookup(_token_content(tok_cfg.get("eos_token")))
    if arch in ("qwen3", "qwen2") and bos is None:
        bos = lookup("<|endoftext|>")  # what the Qwen configs say
    eos_ids = [eos] if eos is not None else []
    if arch == "llama":  # Llama-3 instruct stops on these too
        eos_ids += [i for i in (lookup("<|eom_id|>"), lookup("<|eot_id|>")) if i is not None]
    eos_ids = sorted(set(eos_ids))
    return {"size": size, "bos": bos, "eos": eos_ids[0] if len(eos_ids) == 1 else (eos_ids or None)}


def tokenizer_vision_ids(tok_dir: str) -> Dict[str, int]:
    """The ids of the image tokens among tokenizer.json's added_tokens."""
    with open(os.path.join(tok_dir, "tokenizer.json"), encoding="utf-8") as f:
        added = {t["content"]: t["id"] for t in json.load(f).get("added_tokens", [])}
    missing = [t for t in VISION_TOKENS if t not in added]
    if missing:
        raise SystemExit(f"--vision: the tokenizer has no {', '.join(missing)} among its added_tokens")
    return {t: added[t] for t in VISION_TOKENS}


# ---------------------------------------------------------------- config


def make_config(a: argparse.Namespace, vocab: int, bos, eos) -> dict:
    arch = ARCHITECTURES[a.arch]
    torch_dtype = TORCH_DTYPE_NAMES[a.dtype]
    rope_scaling = None
    if a.rope_scaling == "llama3":
        rope_scaling = {"factor": 8.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                        "original_max_position_embeddings": max(16, a.max_pos // 8), "rope_type": "llama3"}
    common = {
        "architectures": [arch],
        "attention_dropout": 0.0,
        "bos_token_id": bos,
        "eos_token_id": eos,
        "hidden_act": "silu",
        "hidden_size": a.hidden,
        "initializer_range": 0.02,
        "intermediate_size": a.intermediate,
        "max_position_embeddings": a.max_pos,
        "num_attention_heads": a.heads,
        "num_hidden_layers": a.layers,
        "num_key_value_heads": a.kv_heads,
        "rms_norm_eps": 1e-06,
        "rope_scaling": rope_scaling,
        "tie_word_embeddings": a.tie,
        "torch_dtype": torch_dtype,
        "transformers_version": "4.51.0",
        "use_cache": True,
        "vocab_size": vocab,
    }
    if a.arch == "qwen3":
        cfg = dict(common, attention_bias=False, head_dim=a.head_dim, max_window_layers=a.layers,
                   model_type="qwen3", rope_theta=a.rope_theta or 1000000, sliding_window=None,
                   use_sliding_window=False)
    elif a.arch == "qwen2":
        cfg = dict(common, max_window_layers=a.layers, model_type="qwen2",
                   rope_theta=a.rope_theta or 1000000.0, sliding_window=a.max_pos, use_sliding_window=False)
        if a.head_dim != a.hidden // a.heads:
            cfg["head_dim"] = a.head_dim  # Qwen2 configs normally omit it
    else:
        cfg = dict(common, attention_bias=False, head_dim=a.head_dim, mlp_bias=False, model_type="llama",
                   pretraining_tp=1, rms_norm_eps=1e-05, rope_theta=a.rope_theta or 500000.0)
    return dict(sorted(cfg.items()))


def add_vision_config(cfg: dict, a: argparse.Namespace, token_ids: Dict[str, int]) -> dict:
    """The multimodal fields (names as lib/model/vision_config.hpp documents them)."""
    image, start, end = VISION_TOKENS
    cfg = dict(cfg)
    cfg["vision_config"] = {
        "model_type": "musespark_vit",
        "image_size": a.vision_image_size,
        "patch_size": a.vision_patch,
        "num_channels": 3,
        "hidden_size": a.vision_hidden,
        "intermediate_size": a.vision_intermediate,
        "num_hidden_layers": a.vision_layers,
        "num_attention_heads": a.vision_heads,
        **({"stem_channels": a.vision_stem, "stem_strides": a.vision_stem_strides} if a.vision_stem else {}),
        "layer_norm_eps": 1e-06,
        "hidden_act": a.vision_act,
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
    }
    cfg.update({"projector_hidden_act": a.vision_projector_act, "image_token": image,
                "image_token_id": token_ids[image], "vision_start_token": start, "vision_end_token": end})
    return dict(sorted(cfg.items()))


# ---------------------------------------------------------------- weights


def tensor_specs(cfg: dict, a: argparse.Namespace) -> List[st.TensorSpec]:
    dt = st.SHORT_NAMES[a.dtype]
    H, I, V, hd = a.hidden, a.intermediate, cfg["vocab_size"], a.head_dim
    q, kv = a.heads * hd, a.kv_heads * hd
    specs = [st.TensorSpec("model.embed_tokens.weight", dt, (V, H))]
    for i in range(a.layers):
        p = f"model.layers.{i}."
        specs.append(st.TensorSpec(p + "input_layernorm.weight", dt, (H,)))
        specs += [st.TensorSpec(p + "self_attn.q_proj.weight", dt, (q, H)),
                  st.TensorSpec(p + "self_attn.k_proj.weight", dt, (kv, H)),
                  st.TensorSpec(p + "self_attn.v_proj.weight", dt, (kv, H))]
        if a.arch == "qwen2":
            specs += [st.TensorSpec(p + "self_attn.q_proj.bias", dt, (q,)),
                      st.TensorSpec(p + "self_attn.k_proj.bias", dt, (kv,)),
                      st.TensorSpec(p + "self_attn.v_proj.bias", dt, (kv,))]
        specs.append(st.TensorSpec(p + "self_attn.o_proj.weight", dt, (H, q)))
        if a.arch == "qwen3":
            specs += [st.TensorSpec(p + "self_attn.q_norm.weight", dt, (hd,)),
                      st.TensorSpec(p + "self_attn.k_norm.weight", dt, (hd,))]
        specs += [st.TensorSpec(p + "post_attention_layernorm.weight", dt, (H,)),
                  st.TensorSpec(p + "mlp.gate_proj.weight", dt, (I, H)),
                  st.TensorSpec(p + "mlp.up_proj.weight", dt, (I, H)),
                  st.TensorSpec(p + "mlp.down_proj.weight", dt, (H, I))]
    specs.append(st.TensorSpec("model.norm.weight", dt, (H,)))
    if not a.tie:
        specs.append(st.TensorSpec("lm_head.weight", dt, (V, H)))
    if a.vision:
        specs += vision_tensor_specs(a, dt)
    return specs


def vision_tensor_specs(a: argparse.Namespace, dt: str) -> List[st.TensorSpec]:
    D, I, P, T = a.vision_hidden, a.vision_intermediate, a.vision_patch, a.hidden
    n_patches = (a.vision_image_size // P) ** 2
    vm = "vision_tower.vision_model."
    specs, channels = [], 3
    for j, c in enumerate(a.vision_stem):
        specs += [st.TensorSpec(f"{vm}embeddings.stem.{j}.weight", dt, (c, channels, 3, 3)),
                  st.TensorSpec(f"{vm}embeddings.stem.{j}.bias", dt, (c,))]
        channels = c
    K = P // math.prod(a.vision_stem_strides)
    specs += [st.TensorSpec(vm + "embeddings.patch_embedding.weight", dt, (D, channels, K, K)),
             st.TensorSpec(vm + "embeddings.patch_embedding.bias", dt, (D,)),
             st.TensorSpec(vm + "embeddings.position_embedding.weight", dt, (n_patches, D))]
    for i in range(a.vision_layers):
        p = f"{vm}encoder.layers.{i}."
        specs += [st.TensorSpec(p + "layer_norm1.weight", dt, (D,)), st.TensorSpec(p + "layer_norm1.bias", dt, (D,))]
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            specs += [st.TensorSpec(f"{p}self_attn.{proj}.weight", dt, (D, D)),
                      st.TensorSpec(f"{p}self_attn.{proj}.bias", dt, (D,))]
        specs += [st.TensorSpec(p + "layer_norm2.weight", dt, (D,)), st.TensorSpec(p + "layer_norm2.bias", dt, (D,)),
                  st.TensorSpec(p + "mlp.fc1.weight", dt, (I, D)), st.TensorSpec(p + "mlp.fc1.bias", dt, (I,)),
                  st.TensorSpec(p + "mlp.fc2.weight", dt, (D, I)), st.TensorSpec(p + "mlp.fc2.bias", dt, (D,))]
    specs += [st.TensorSpec(vm + "post_layernorm.weight", dt, (D,)), st.TensorSpec(vm + "post_layernorm.bias", dt, (D,)),
              st.TensorSpec("multi_modal_projector.linear_1.weight", dt, (T, D)),
              st.TensorSpec("multi_modal_projector.linear_1.bias", dt, (T,)),
              st.TensorSpec("multi_modal_projector.linear_2.weight", dt, (T, T)),
              st.TensorSpec("multi_modal_projector.linear_2.bias", dt, (T,))]
    return specs


def random_tensor(spec: st.TensorSpec, seed: int) -> torch.Tensor:
    """The values of one tensor: depend only on (seed, name, shape)."""
    g = torch.Generator().manual_seed((seed * 1_000_003 + zlib.crc32(spec.name.encode())) % (2 ** 63))
    name, shape = spec.name, spec.shape
    if name.endswith("norm.weight") or name.endswith(("layer_norm1.weight", "layer_norm2.weight")):
        return 1.0 + 0.1 * torch.randn(shape, generator=g)
    if name.endswith(".bias"):
        return 0.2 * torch.randn(shape, generator=g)
    # [out, in] for projections; [vocab, hidden] for embeddings and lm_head;
    # [out, channels, p, p] for the patch convolution.
    fan_in = math.prod(shape[1:])
    return torch.randn(shape, generator=g) * (1.0 / math.sqrt(fan_in))


def main(argv: Optional[List[str]] = None) -> int:
    a = parse_args(argv)
    os.makedirs(a.out_dir, exist_ok=True)
    bos, eos = None, None
    vocab = a.vocab if a.vocab is not None else 512
    vision_ids: Dict[str, int] = {}
    if a.tokenizer_from:
        info = tokenizer_ids(a.tokenizer_from, a.arch)
        if a.vision:
            vision_ids = tokenizer_vision_ids(a.tokenizer_from)
        needed = -(-info["size"] // 128) * 128
        vocab = max(a.vocab or 0, needed)
        bos, eos = info["bos"], info["eos"]
        for name in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copyfile(os.path.join(a.tokenizer_from, name), os.path.join(a.out_dir, name))
        if a.open_think:
            path = os.path.join(a.out_dir, "tokenizer_config.json")
            with open(path) as f:
                tc = json.load(f)
            plain = "{{- '<|im_start|>assistant\\n' }}"
            if plain not in tc.get("chat_template", ""):
                raise SystemExit("--open-think: the template has no plain assistant generation prompt")
            tc["chat_template"] = tc["chat_template"].replace(plain, "{{- '<|im_start|>assistant\\n<think>\\n' }}")
            with open(path, "w") as f:
                json.dump(tc, f, indent=2, ensure_ascii=False)
    else:
        # No tokenizer: the last ids stand for the special tokens.
        bos, eos = vocab - 2, vocab - 1
        if a.vision and vocab < 5:
            raise SystemExit("--vision without --tokenizer-from needs --vocab >= 5 (5 special ids)")
        vision_ids = dict(zip(VISION_TOKENS, (vocab - 3, vocab - 5, vocab - 4)))
    cfg = make_config(a, vocab, bos, eos)
    if a.vision:
        cfg = add_vision_config(cfg, a, vision_ids)
    with open(os.path.join(a.out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    # A stale single file would shadow new shards (and vice versa): remove both kinds.
    for old in os.listdir(a.out_dir):
        if old.endswith(".safetensors") or old == st.INDEX_FILE:
            os.remove(os.path.join(a.out_dir, old))
    specs = tensor_specs(cfg, a)
    boosts = dict(a.boost)

    def produce(spec):
        t = random_tensor(spec, a.seed)
        if spec.name == "lm_head.weight":
            for token, scale in boosts.items():
                t[token] *= scale
        return t

    st.write_model(a.out_dir, specs, produce, a.shards)
    return 0


if __name__ == "__main__":
    sys.exit(main())
