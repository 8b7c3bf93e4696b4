"""The `musespark` command's contract (generate, bench, errors), run as a user would."""

import json
import os
import shutil
import subprocess

import pytest
import torch

from conftest import BIN, SMALLEST_QWEN3  # noqa: E402
import reference_forward as ref  # noqa: E402
import safetensors_io as st  # noqa: E402

PROMPT_IDS = [3, 14, 15, 92, 65, 35, 89, 79]


def run(*args, check=True):
    p = subprocess.run([BIN, *map(str, args)], capture_output=True)
    if check and p.returncode != 0:
        raise AssertionError(f"{args} failed ({p.returncode}): {p.stderr.decode(errors='replace')}")
    return p


def run_json(*args):
    return json.loads(run(*args).stdout)


def refused(*args, names=()):
    """The command must fail cleanly: exit 1, one 'error:' line naming what is at fault."""
    p = run(*args, check=False)
    err = p.stderr.decode(errors="replace")
    assert p.returncode == 1, f"exit {p.returncode}: {err}"
    assert err.startswith("error: "), err
    for name in names:
        assert str(name) in err, f"{name!r} not in {err!r}"
    return err


@pytest.fixture(scope="module")
def tiny(tiny_model):
    return tiny_model("qwen2", "--arch", "qwen2", "--vocab", 300, "--hidden", 64, "--layers", 2, "--heads", 4,
                      "--kv-heads", 2, "--intermediate", 96, "--seed", 5, "--max-pos", 256, qwen3_tokenizer=False)


@pytest.fixture(scope="module")
def chat_model(tiny_model):
    return tiny_model("qwen3-chat", *SMALLEST_QWEN3, "--seed", 9)


def test_generate_json_matches_the_reference(tiny):
    out = run_json("generate", "--model", tiny, "--prompt-ids", ",".join(map(str, PROMPT_IDS)),
                   "--max-tokens", 12, "--top-logprobs", 4, "--json")
    model = ref.Model(tiny)
    assert out["tokens"] == ref.greedy(model, PROMPT_IDS, 12)
    assert out["stop_reason"] == "length"
    assert len(out["top_logprobs"]) == 12
    assert all(len(alts) == 4 for alts in out["top_logprobs"])
    # The first token's alternatives are the reference's top 4 with its log-probabilities.
    logprobs = torch.log_softmax(ref.forward(model, PROMPT_IDS)[-1].double(), -1)
    top = torch.topk(logprobs, 4)
    assert [a["id"] for a in out["top_logprobs"][0]] == top.indices.tolist()
    for alt, want in zip(out["top_logprobs"][0], top.values.tolist()):
        assert abs(alt["logprob"] - want) < 1e-4
    assert out["logprobs"][0] == out["top_logprobs"][0][0]["logprob"]


def test_sampling_is_reproducible_by_seed(tiny):
    args = ["generate", "--model", tiny, "--prompt-ids", "1,2,3", "--max-tokens", 24, "--temperature", 1.0,
            "--top-k", 50, "--top-p", 0.95, "--min-p", 0.01, "--json"]
    a = run_json(*args, "--seed", 1)["tokens"]
    b = run_json(*args, "--seed", 1)["tokens"]
    c = run_json(*args, "--seed", 2)["tokens"]
    assert a == b
    assert a != c


def test_chat_generation_with_a_real_tokenizer_and_stop_strings(chat_model):
    base = ["generate", "--model", chat_model, "--chat", "--prompt", "Hello there", "--max-tokens", 16,
            "--ignore-eos", "--json"]
    full = run_json(*base)
    assert full["prompt_tokens"] > 5
    assert len(full["tokens"]) == 16
    text = full["text"]
    assert len(text) > 4
    # Stop on a piece of the text: generation ends before it, and the text is cut there.
    stop = text[len(text) // 2: len(text) // 2 + 3]
    cut = run_json(*base, "--stop", stop)
    assert cut["stop_reason"] == "stop_string"
    assert cut["text"] == text[:text.index(stop)]
    assert len(cut["tokens"]) < 16
    # Without --json the text streams to stdout, the summary goes to stderr.
    p = run(*base[:-1])
    assert p.stdout.decode() == text + "\n"
    assert b"16 generated" in p.stderr


def test_thinking_switch_changes_the_prompt(chat_model):
    on = run_json("generate", "--model", chat_model, "--chat", "--prompt", "hi", "--max-tokens", 1, "--json")
    off = run_json("generate", "--model", chat_model, "--chat", "--no-think", "--prompt", "hi", "--max-tokens", 1,
                   "--json")
    # enable_thinking=false adds an empty <think>\n\n</think>\n\n block to the prompt.
    assert off["prompt_tokens"] > on["prompt_tokens"]


def test_bench_reports_speed_and_bandwidth(tiny):
    out = run_json("bench", "--model", tiny, "--prompt-tokens", 16, "--gen-tokens", 4, "--batch", 3,
                   "--threads", 1, "--json")
    assert out["batch"] == 3
    assert out["prefill_tokens_per_second"] > 0
    assert out["decode_tokens_per_second"] > 0
    assert out["read_bandwidth_gb_per_second"] > 0.1
    assert 0 < out["fraction_of_bandwidth_limit"]
    assert out["bytes_per_token"] > 0


# ------------------------------------------------------------------ errors


def copy_model(src, dst):
    shutil.copytree(src, dst)
    return str(dst)


def test_errors_name_the_file_and_field(tiny, tmp_path):
    refused("generate", "--model", tmp_path / "nope", "--prompt-ids", "1", names=["nope", "not a directory"])

    m = copy_model(tiny, tmp_path / "no-config")
    os.remove(os.path.join(m, "config.json"))
    refused("generate", "--model", m, "--prompt-ids", "1", names=["config.json"])

    m = copy_model(tiny, tmp_path / "bad-json")
    with open(os.path.join(m, "config.json"), "w") as f:
        f.write('{"architectures": ["Qwen2ForCausalLM"], "hidden_size": ')
    refused("generate", "--model", m, "--prompt-ids", "1", names=["config.json", "malformed JSON"])

    m = copy_model(tiny, tmp_path / "bad-field")
    cfg = json.load(open(os.path.join(m, "config.json")))
    cfg["num_attention_heads"] = -4
    json.dump(cfg, open(os.path.join(m, "config.json"), "w"))
    refused("generate", "--model", m, "--prompt-ids", "1", names=["config.json", "num_attention_heads"])

    m = copy_model(tiny, tmp_path / "arch")
    cfg = json.load(open(os.path.join(m, "config.json")))
    cfg["architectures"] = ["GPT2LMHeadModel"]
    json.dump(cfg, open(os.path.join(m, "config.json"), "w"))
    refused("generate", "--model", m, "--prompt-ids", "1", names=["config.json", "architectures", "GPT2LMHeadModel"])

    m = copy_model(tiny, tmp_path / "truncated")
    weights = os.path.join(m, "model.safetensors")
    size = os.path.getsize(weights)
    with open(weights, "r+b") as f:
        f.truncate(size - 1000)
    refused("generate", "--model", m, "--prompt-ids", "1", names=["model.safetensors"])

    m = copy_model(tiny, tmp_path / "missing-tensor")
    tensors = {k: v.clone() for k, v in st.read_file(os.path.join(m, "model.safetensors")).items()}
    del tensors["model.layers.1.mlp.up_proj.weight"]
    st.write_file(os.path.join(m, "model.safetensors"), tensors)
    refused("generate", "--model", m, "--prompt-ids", "1", names=["model.layers.1.mlp.up_proj.weight"])

    m = copy_model(tiny, tmp_path / "wrong-shape")
    tensors = {k: v.clone() for k, v in st.read_file(os.path.join(m, "model.safetensors")).items()}
    tensors["model.norm.weight"] = torch.ones(65)
    st.write_file(os.path.join(m, "model.safetensors"), tensors)
    refused("generate", "--model", m, "--prompt-ids", "1", names=["model.norm.weight", "[65]", "[64]"])


def test_bad_arguments_are_refused(tiny):
    refused("generate", "--model", tiny, "--prompt-ids", ",".join(["5"] * 40), "--max-context", 32,
            "--max-tokens", 4, names=["40 tokens", "context"])
    refused("generate", "--model", tiny, "--prompt-ids", "1,300", names=["300"])
    refused("generate", "--model", tiny, "--prompt-ids", "1,x", names=["--prompt-ids", "'x'"])
    refused("generate", "--model", tiny, "--prompt-ids", "1", "--top-p", 0, names=["top_p"])
    refused("generate", "--model", tiny, "--prompt", "hello", names=["tokenizer.json"])
    refused("generate", "--model", tiny, "--prompt-ids", "1", "--max-context", 100000,
            names=["max_context", "max_position_embeddings"])
    # A parse error from the command line is not an engine error, but still a clean non-zero exit.
    p = run("generate", "--model", tiny, "--prompt-ids", "1", "--dtype", "f8", check=False)
    assert p.returncode != 0 and b"dtype" in p.stderr


def test_invalid_utf8_prompt_is_refused(chat_model):
    p = subprocess.run([BIN, "generate", "--model", chat_model, "--prompt", b"caf\xc3(", "--max-tokens", "1"],
                       capture_output=True)
    assert p.returncode == 1
    assert p.stderr.startswith(b"error: ")
    assert b"UTF-8" in p.stderr
