#!/usr/bin/python3
"""Converts an HF-layout model folder (as make_tiny_model.py writes it) to a GGUF v3 file laid out the way
llama.cpp's convert_hf_to_gguf.py (and, for q4_k_m, llama-quantize) lays it out, for the tests.

    hf_to_gguf.py SRC_DIR OUT.gguf [--type f32|f16|bf16|q8_0|q4_0|q4_1|q4_k|q5_k|q6_k|q4_k_m]
                  [--no-tokenizer] [--no-chat-template]

or from Python: convert(src_dir, out_path, type_name="f32", tokenizer=True, chat_template=True).

Input: SRC_DIR/config.json ("architectures": Qwen3ForCausalLM -> qwen3, Qwen2ForCausalLM -> qwen2,
LlamaForCausalLM -> llama; others are refused), model.safetensors or shards with
model.safetensors.index.json, and (unless --no-tokenizer) tokenizer.json (byte-level BPE) with
tokenizer_config.json.

Written, in this order:
  general.architecture, general.name (config _name_or_path or the folder name), general.file_type
  (llama.cpp's LLAMA_FTYPE: f32 0, f16 1, bf16 32, q8_0 7, q4_0 2, q4_1 3, q4_k 14 (Q4_K_S), q5_k 17
  (Q5_K_M), q6_k 18, q4_k_m 15), general.quantization_version = 2 (as llama.cpp always writes);
  {arch}.context_length, .embedding_length, .block_count, .feed_forward_length, .attention.head_count,
  .attention.head_count_kv, .attention.key_length, .attention.value_length, .vocab_size (u32);
  .attention.layer_norm_rms_epsilon, .rope.freq_base (f32); llama only: .rope.dimension_count (u32);
  rope_scaling "linear": .rope.scaling.type and .rope.scaling.factor. general.alignment is not written
  (the default 32 is used).
  Tokenizer: tokenizer.ggml.model "gpt2", .pre ("qwen2" or "llama-bpe"), .tokens (ids 0..vocab_size-1,
  "[PAD{id}]" where no token), .token_type (i32: 1 normal, 3 control: added tokens with "special": true,
  4 other added tokens, 5 the [PAD] ids; llama.cpp also makes non-special tokens that look special, like
  Qwen's "<|fim_prefix|>", control: not done here, so the special flags survive a round trip), .merges
  ("a b"), .bos/.eos/.unknown/.seperator/.padding_token_id (u32: tokenizer_config's bos_token etc., else
  config.json's bos_token_id etc. when an integer, as llama.cpp's SpecialVocab does; omitted when neither;
  a config.json eos list is not carried), .add_bos_token/.add_eos_token (bool, when tokenizer_config
  says; qwen: add_bos false when it does not), tokenizer.chat_template (tokenizer_config's string, or
  SRC_DIR/chat_template.jinja).
Tensors (torch [out, in] is GGUF [in, out]; rows of ne0 = in):
  rope_freqs.weight (llama with rope_scaling llama3: head_dim/2 frequency divisors, F32), token_embd,
  blk.N.{attn_norm, attn_q(.bias), attn_k(.bias), attn_v(.bias), attn_output, attn_q_norm, attn_k_norm,
  ffn_norm, ffn_gate, ffn_up, ffn_down}, output_norm, output (only when lm_head exists and
  tie_word_embeddings is false). For llama, attn_q/attn_k rows are permuted from HF's rotate-half order
  to interleaved pairs: per head, reshape [n_head, 2, head_dim/2, ...] -> swap axes 1, 2 -> reshape.
Types: 1-D tensors (norms, biases, rope_freqs) are F32. f32/f16/bf16 (bf16 rounded to nearest even):
  every matrix in that type. q8_0/q4_0/q4_1/q4_k/q5_k/q6_k: every matrix in that type; q4_k_m: Q4_K, but
  Q6_K for output.weight (or token_embd when tied: it serves as the output) and for attn_v and ffn_down of
  the layers llama.cpp's use_more_bits picks (i < n/8, i >= 7n/8, (i - n/8) % 3 == 2). A matrix whose row
  length is not a multiple of the chosen type's block falls back to Q8_0 when it is a multiple of 32,
  else F16. The quantizers are tests/model/make_gguf.py's.
Left out: vision tensors (vision_tower.*, multi_modal_projector.*) and rotary_emb.inv_freq (text only);
  any other unknown tensor is an error; rope scaling other than llama3 (llama) or linear is refused.
Needs Debian's python3 with numpy and torch (for safetensors_io).
"""
import argparse
import json
import math
import os
import struct
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "model"))
import make_gguf as mg  # noqa: E402
import safetensors_io as st  # noqa: E402
from make_gguf import ARRAY, BOOL, FLOAT32, GGML, I32, QUANTIZERS, STRING, U32  # noqa: E402

ARCHS = {"Qwen3ForCausalLM": "qwen3", "Qwen2ForCausalLM": "qwen2", "LlamaForCausalLM": "llama"}
# --type: (ggml type of the matrices, general.file_type)
TYPES = {"f32": ("F32", 0), "f16": ("F16", 1), "bf16": ("BF16", 32), "q8_0": ("Q8_0", 7), "q4_0": ("Q4_0", 2),
         "q4_1": ("Q4_1", 3), "q4_k": ("Q4_K", 14), "q5_k": ("Q5_K", 17), "q6_k": ("Q6_K", 18),
         "q4_k_m": ("Q4_K", 15)}
LAYER_TENSORS = [  # (GGUF suffix, HF suffix), in the order written
    ("attn_norm.weight", "input_layernorm.weight"),
    ("attn_q.weight", "self_attn.q_proj.weight"), ("attn_q.bias", "self_attn.q_proj.bias"),
    ("attn_k.weight", "self_attn.k_proj.weight"), ("attn_k.bias", "self_attn.k_proj.bias"),
    ("attn_v.weight", "self_attn.v_proj.weight"), ("attn_v.bias", "self_attn.v_proj.bias"),
    ("attn_output.weight", "self_attn.o_proj.weight"),
    ("attn_q_norm.weight", "self_attn.q_norm.weight"), ("attn_k_norm.weight", "self_attn.k_norm.weight"),
    ("ffn_norm.weight", "post_attention_layernorm.weight"),
    ("ffn_gate.weight", "mlp.gate_proj.weight"), ("ffn_up.weight", "mlp.up_proj.weight"),
    ("ffn_down.weight", "mlp.down_proj.weight"),
]
SKIPPED_PREFIXES = ("vision_tower.", "multi_modal_projector.")
TOKEN_NORMAL, TOKEN_CONTROL, TOKEN_USER_DEFINED, TOKEN_UNUSED = 1, 3, 4, 5
SPECIAL_IDS = [("bos", "bos"), ("eos", "eos"), ("unk", "unknown"), ("sep", "seperator"), ("pad", "padding")]


class ConversionError(Exception):
    pass


def read_json(path, default=None):
    if default is not None and not os.path.exists(path):
        return default
    with open(path, encoding="utf-8") as f:
        return json.load(f)


# ---------------------------------------------------------------- tensors


def bf16_nearest_even(x):
    """float32 -> bf16 bits, rounding to nearest even; NaNs stay (quiet) NaNs. Returns (bytes, decoded)."""
    x = mg.f32(x)
    u = x.view("<u4").astype(np.uint64)
    bits = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u2")
    nan = np.isnan(x)
    bits[nan] = ((u[nan] >> 16) | 0x40).astype("<u2")
    return bits.tobytes(), (bits.astype("<u4") << 16).view(mg.F32)


ENCODERS = dict(QUANTIZERS, BF16=bf16_nearest_even)


def permute_rotate_half(w, n_head):
    """HF rotate-half rows (per head: first halves, then second halves) -> llama.cpp's interleaved pairs."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def llama3_rope_factors(rope_scaling, theta, head_dim):
    """The Llama 3.1 frequency divisors, one per rotated pair: 1 for short wavelengths, `factor` for long
    ones, a smooth blend between."""
    factor = float(rope_scaling.get("factor", 8.0))
    low = float(rope_scaling.get("low_freq_factor", 1.0))
    high = float(rope_scaling.get("high_freq_factor", 4.0))
    old_ctx = float(rope_scaling.get("original_max_position_embeddings", 8192))
    freqs = 1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float32) / head_dim)
    out = []
    for freq in freqs:
        wavelen = 2 * math.pi / float(freq)
        if wavelen < old_ctx / high:
            out.append(1.0)
        elif wavelen > old_ctx / low:
            out.append(factor)
        else:
            smooth = (old_ctx / wavelen - low) / (high - low)
            out.append(1.0 / ((1 - smooth) / factor + smooth))
    return mg.f32(out)


def use_more_bits(i, n):
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def tensor_type(name, shape, type_name, n_layer, has_output):
    """The ggml type of one tensor (shape in torch order)."""
    if len(shape) < 2:
        return "F32"
    t = TYPES[type_name][0]
    if type_name == "q4_k_m":
        layer = int(name.split(".")[1]) if name.startswith("blk.") else -1
        if name == "output.weight" or (name == "token_embd.weight" and not has_output):
            t = "Q6_K"
        elif name.endswith(("attn_v.weight", "ffn_down.weight")) and use_more_bits(layer, n_layer):
            t = "Q6_K"
    if shape[-1] % GGML[t][1]:
        t = "Q8_0" if shape[-1] % 32 == 0 else "F16"
    return t


def payload_size(type_name, n_elements):
    _, block, block_bytes = GGML[type_name]
    return n_elements // block * block_bytes


# ---------------------------------------------------------------- tokenizer


def token_content(value):
    return value.get("content") if isinstance(value, dict) else value if isinstance(value, str) else None


def tokenizer_kvs(src, arch, vocab_size, cfg, with_chat_template):
    if not os.path.exists(os.path.join(src, "tokenizer.json")):
        raise ConversionError(f"{src}: no tokenizer.json (convert with --no-tokenizer / tokenizer=False)")
    tok = read_json(os.path.join(src, "tokenizer.json"))
    tok_cfg = read_json(os.path.join(src, "tokenizer_config.json"), {})
    model = tok.get("model") or {}
    if model.get("type") != "BPE":
        raise ConversionError(f"{src}/tokenizer.json: model type {model.get('type')!r}, only BPE is converted")
    by_id = {i: s for s, i in model.get("vocab", {}).items()}
    added = {int(k): a for k, a in (tok_cfg.get("added_tokens_decoder") or {}).items()}
    added.update({a["id"]: a for a in tok.get("added_tokens", [])})
    by_id.update({i: a["content"] for i, a in added.items()})
    tokens, types = [], []
    for i in range(vocab_size):
        text = by_id.get(i)
        if text is None:
            tokens.append(f"[PAD{i}]")
            types.append(TOKEN_UNUSED)
            continue
        tokens.append(text)
        if i not in added:
            types.append(TOKEN_NORMAL)
        else:
            types.append(TOKEN_CONTROL if added[i].get("special") else TOKEN_USER_DEFINED)
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    kvs = [("tokenizer.ggml.model", STRING, "gpt2"),
           ("tokenizer.ggml.pre", STRING, "llama-bpe" if arch == "llama" else "qwen2"),
           ("tokenizer.ggml.tokens", ARRAY, (STRING, tokens)),
           ("tokenizer.ggml.token_type", ARRAY, (I32, types)),
           ("tokenizer.ggml.merges", ARRAY, (STRING, merges))]
    ids = {s: i for i, s in by_id.items() if i < vocab_size}
    for hf, gguf in SPECIAL_IDS:
        tid = ids.get(token_content(tok_cfg.get(hf + "_token")))
        if tid is None and isinstance(cfg.get(hf + "_token_id"), int) and 0 <= cfg[hf + "_token_id"] < vocab_size:
            tid = cfg[hf + "_token_id"]
        if tid is not None:
            kvs.append((f"tokenizer.ggml.{gguf}_token_id", U32, tid))
    add_bos = tok_cfg.get("add_bos_token")
    if isinstance(add_bos, bool) or arch in ("qwen2", "qwen3"):
        kvs.append(("tokenizer.ggml.add_bos_token", BOOL, bool(add_bos)))
    if isinstance(tok_cfg.get("add_eos_token"), bool):
        kvs.append(("tokenizer.ggml.add_eos_token", BOOL, tok_cfg["add_eos_token"]))
    if with_chat_template:
        template = tok_cfg.get("chat_template")
        jinja = os.path.join(src, "chat_template.jinja")
        if isinstance(template, list):  # named templates, as some configs have
            for entry in template:
                key = "tokenizer.chat_template" + ("" if entry["name"] == "default" else "." + entry["name"])
                kvs.append((key, STRING, entry["template"]))
        elif isinstance(template, str):
            kvs.append(("tokenizer.chat_template", STRING, template))
        elif os.path.exists(jinja):
            with open(jinja, encoding="utf-8") as f:
                kvs.append(("tokenizer.chat_template", STRING, f.read()))
    return kvs


# ---------------------------------------------------------------- writing


def write_gguf(path, kvs, tensors, alignment=32):
    """Streams a GGUF v3 file, byte for byte what make_gguf.gguf_file builds in memory.
    tensors: [(name, GGUF dims, ggml type name, payload size, produce() -> bytes)]."""
    offsets, pos = [], 0
    for _, _, _, size, _ in tensors:
        pos += mg.pad(pos, alignment)
        offsets.append(pos)
        pos += size
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs)) + b"".join(mg.kv_bytes(*kv) for kv in kvs)
    head += b"".join(mg.tensor_info_bytes(name, dims, GGML[t][0], off)
                     for (name, dims, t, _, _), off in zip(tensors, offsets))
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(head)
        if tensors:
            f.write(b"\0" * mg.pad(len(head), alignment))
        pos = 0
        for (name, _, _, size, produce), off in zip(tensors, offsets):
            f.write(b"\0" * (off - pos))
            data = produce()
            if len(data) != size:
                raise AssertionError(f"{name}: {len(data)} bytes, expected {size}")
            f.write(data)
            pos = off + size
    os.replace(tmp, path)


def convert(src_dir, out_path, type_name="f32", tokenizer=True, chat_template=True):
    """Converts SRC_DIR to OUT_PATH; returns [(tensor name, ggml type name, GGUF dims)] as written."""
    if type_name not in TYPES:
        raise ConversionError(f"unknown type {type_name!r}; one of {', '.join(TYPES)}")
    cfg = read_json(os.path.join(src_dir, "config.json"))
    hf_archs = cfg.get("architectures") or []
    if len(hf_archs) != 1 or hf_archs[0] not in ARCHS:
        raise ConversionError(f"{src_dir}: architectures {hf_archs}: only {', '.join(ARCHS)} are converted")
    arch = ARCHS[hf_archs[0]]
    hidden, n_layer, n_head = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"]
    n_kv = cfg.get("num_key_value_heads") or n_head
    head_dim = cfg.get("head_dim") or hidden // n_head
    theta = float(cfg.get("rope_theta", 10000.0))
    vocab_size = cfg["vocab_size"]
    tied = bool(cfg.get("tie_word_embeddings", False))

    kvs = [("general.architecture", STRING, arch),
           ("general.name", STRING, os.path.basename(str(cfg.get("_name_or_path") or "").rstrip("/"))
            or os.path.basename(os.path.abspath(src_dir))),
           ("general.file_type", U32, TYPES[type_name][1]),
           ("general.quantization_version", U32, 2)]
    kvs += [(f"{arch}.{key}", vtype, value) for key, vtype, value in [
        ("context_length", U32, cfg["max_position_embeddings"]), ("embedding_length", U32, hidden),
        ("block_count", U32, n_layer), ("feed_forward_length", U32, cfg["intermediate_size"]),
        ("attention.head_count", U32, n_head), ("attention.head_count_kv", U32, n_kv),
        ("attention.key_length", U32, head_dim), ("attention.value_length", U32, head_dim),
        ("attention.layer_norm_rms_epsilon", FLOAT32, float(cfg.get("rms_norm_eps", 1e-6))),
        ("rope.freq_base", FLOAT32, theta), ("vocab_size", U32, vocab_size)]]
    if arch == "llama":
        kvs.append(("llama.rope.dimension_count", U32, head_dim))

    extra = {}  # GGUF name -> float32 array computed here
    scaling = cfg.get("rope_scaling")
    if scaling:
        kind = scaling.get("rope_type") or scaling.get("type")
        if kind == "llama3" and arch == "llama":
            extra["rope_freqs.weight"] = llama3_rope_factors(scaling, theta, head_dim)
        elif kind == "linear":
            kvs += [(f"{arch}.rope.scaling.type", STRING, "linear"),
                    (f"{arch}.rope.scaling.factor", FLOAT32, float(scaling["factor"]))]
        else:
            raise ConversionError(f"{src_dir}: rope_scaling type {kind!r} is not converted for {arch}")
    if tokenizer:
        kvs += tokenizer_kvs(src_dir, arch, vocab_size, cfg, chat_template)

    weights = st.read_model(src_dir)
    names = [("token_embd.weight", "model.embed_tokens.weight")]
    for i in range(n_layer):
        names += [(f"blk.{i}.{g}", f"model.layers.{i}.{h}") for g, h in LAYER_TENSORS]
    names.append(("output_norm.weight", "model.norm.weight"))
    if not tied:
        names.append(("output.weight", "lm_head.weight"))
    names = [(g, h) for g, h in names if h in weights]
    used = {h for _, h in names} | ({"lm_head.weight"} if tied else set())
    unknown = sorted(n for n in weights if n not in used and not n.startswith(SKIPPED_PREFIXES)
                     and not n.endswith("rotary_emb.inv_freq"))
    if unknown:
        raise ConversionError(f"{src_dir}: tensors with no GGUF name: {', '.join(unknown[:8])}")
    has_output = any(g == "output.weight" for g, _ in names)

    def source(gguf, hf):
        def load():
            x = weights[hf].float().numpy()
            if arch == "llama" and hf.endswith(("q_proj.weight", "q_proj.bias")):
                x = permute_rotate_half(x, n_head)
            elif arch == "llama" and hf.endswith(("k_proj.weight", "k_proj.bias")):
                x = permute_rotate_half(x, n_kv)
            return x
        return load

    plan = [(g, (lambda x=x: x)) for g, x in extra.items()] + [(g, source(g, h)) for g, h in names]
    shapes = {g: tuple(x.shape) for g, x in extra.items()}
    shapes.update({g: tuple(weights[h].shape) for g, h in names})
    tensors = []
    for gguf, load in plan:
        shape = shapes[gguf]
        t = tensor_type(gguf, shape, type_name, n_layer, has_output)
        row = shape[-1] if shape else 1

        def produce(load=load, t=t, row=row):
            return ENCODERS[t](mg.f32(load()).reshape(-1, row))[0]
        tensors.append((gguf, list(reversed(shape)), t, payload_size(t, math.prod(shape)), produce))
    write_gguf(out_path, kvs, tensors)
    return [(name, t, dims) for name, dims, t, _, _ in tensors]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src_dir")
    p.add_argument("out")
    p.add_argument("--type", default="f32", choices=list(TYPES))
    p.add_argument("--no-tokenizer", dest="tokenizer", action="store_false")
    p.add_argument("--no-chat-template", dest="chat_template", action="store_false")
    a = p.parse_args(argv)
    try:
        convert(a.src_dir, a.out, a.type, a.tokenizer, a.chat_template)
    except (ConversionError, FileNotFoundError, KeyError) as e:
        print(f"hf_to_gguf: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
