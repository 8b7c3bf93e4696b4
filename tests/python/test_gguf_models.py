"""GGUF models (llama.cpp's files) run as the HF folders they were converted from.

tests/tools/hf_to_gguf.py writes each tiny random model (qwen3, qwen2, llama with Llama 3.1 rope scaling,
real Qwen3 and Llama 3 tokenizers) as GGUF the way llama.cpp's converter lays it out: F32 files must give
the folder's log-probabilities, quantized ones (Q8_0, Q4_K_M) the same greedy tokens within the
quantization's error; the GGUF's tokenizer (tokenizer.ggml.*) the ids of tokenizer.json over the tokenizer
corpus; its chat template the same prompt; bad files an error naming the file and the key.
"""

import json
import os
import struct
import subprocess
import sys

import pytest

from conftest import BIN, SOURCE_DIR

sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "tools"))
sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "model"))
import hf_to_gguf  # noqa: E402
import make_gguf  # noqa: E402

LLAMA3_TOKENIZER = os.path.join(SOURCE_DIR, "node_modules", "@lenml", "tokenizer-llama3", "models")
SHAPE = ("--hidden", 64, "--layers", 2, "--heads", 4, "--kv-heads", 2, "--intermediate", 128, "--seed", 3)


def run(*args, check=True):
    p = subprocess.run([BIN, *map(str, args)], capture_output=True)
    if check and p.returncode != 0:
        raise AssertionError(f"{args} failed ({p.returncode}): {p.stderr.decode(errors='replace')}")
    return p


def generate(model, *extra):
    return json.loads(run("generate", "--model", model, "--prompt", "The sum of 14 and 85 is", "--chat",
                          "--max-tokens", 8, "--ignore-eos", "--json", *extra).stdout)


@pytest.fixture(scope="module")
def models(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("gguf")
    folders = {
        "qwen3": tiny_model("q3", "--arch", "qwen3", *SHAPE),
        "qwen2": tiny_model("q2", "--arch", "qwen2", *SHAPE),
        "llama": tiny_model("ll", "--arch", "llama", *SHAPE, "--rope-scaling", "llama3", "--tokenizer-from",
                            LLAMA3_TOKENIZER, qwen3_tokenizer=False),
    }
    files = {}
    for arch, folder in folders.items():
        for kind in ("f32", *({"qwen3": ["q4_k_m"], "llama": ["q8_0"]}.get(arch, []))):
            files[arch, kind] = str(out / f"{arch}-{kind}.gguf")
            hf_to_gguf.convert(folder, files[arch, kind], kind)
    return folders, files


@pytest.mark.parametrize("arch", ["qwen3", "qwen2", "llama"])
def test_f32_gguf_gives_the_folders_logprobs(models, arch):
    folders, files = models
    want, got = generate(folders[arch]), generate(files[arch, "f32"])
    assert got["tokens"] == want["tokens"]
    assert got["prompt_tokens"] == want["prompt_tokens"]
    # Llama's rope scaling comes as llama.cpp's per-frequency factors, not HF's formula: rounding apart.
    assert max(abs(a - b) for a, b in zip(got["logprobs"], want["logprobs"])) < 1e-4


@pytest.mark.parametrize("arch,kind,tolerance", [("llama", "q8_0", 0.05), ("qwen3", "q4_k_m", 0.3)])
def test_quantized_gguf_decodes_close_to_the_folder(models, arch, kind, tolerance):
    folders, files = models
    want = generate(folders[arch], "--top-logprobs", 3)
    got = generate(files[arch, kind], "--top-logprobs", 3)
    # Teacher-forced on the folder's tokens would be stricter; greedy tokens of a random model are
    # near-ties, so compare the first step's top tokens and log-probabilities.
    first_want = {a["id"]: a["logprob"] for a in want["top_logprobs"][0]}
    first_got = {a["id"]: a["logprob"] for a in got["top_logprobs"][0]}
    assert got["tokens"][0] == want["tokens"][0]
    for token, lp in first_got.items():
        if token in first_want:
            assert abs(lp - first_want[token]) < tolerance


def test_gguf_tokenizer_gives_tokenizer_json_ids(models, tmp_path):
    folders, files = models
    corpus = json.load(open(os.path.join(SOURCE_DIR, "tests", "tokenizer", "corpus.json"), encoding="utf-8"))
    pieces = [c["text"] if "text" in c else c["repeat"]["text"] * c["repeat"]["count"] for c in corpus["cases"]]
    text = "\n".join(pieces) + "<|im_start|>user\nhi<|im_end|><think> </think>"
    f = tmp_path / "corpus.txt"
    f.write_text(text, encoding="utf-8")
    for arch in ("qwen3", "llama"):
        want = json.loads(run("tokenize", "--model", folders[arch], "--file", f).stdout)
        got = json.loads(run("tokenize", "--model", files[arch, "f32"], "--file", f).stdout)
        assert len(want) > 1000
        assert got == want, arch


def test_gguf_chat_template_renders_the_same_prompt(models, tmp_path):
    folders, files = models
    messages = tmp_path / "m.json"
    messages.write_text(json.dumps([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}]))
    for arch in ("qwen3", "llama"):
        want = run("template", "--model", folders[arch], "--messages", messages).stdout
        assert run("template", "--model", files[arch, "f32"], "--messages", messages).stdout == want


def test_ask_runs_on_a_gguf_file(models):
    _, files = models
    p = run("ask", "--model", files["qwen3", "q4_k_m"], "--mode", "thinking", "--agents", 2,
            "--max-thinking-tokens", 8, "--max-answer-tokens", 4, "--json", "What is 2 + 2?")
    trace = json.loads(p.stdout)
    assert len(trace["agents"]) == 2


def bad_gguf(path, kvs, tensors=()):
    data, _, _ = make_gguf.gguf_file(kvs, list(tensors))
    path.write_bytes(data)
    return path


def test_bad_gguf_files_name_the_file_and_the_key(tmp_path):
    S, U32 = make_gguf.STRING, make_gguf.U32

    def refused(path, *names):
        p = run("generate", "--model", path, "--prompt-ids", "1", "--max-tokens", 1, check=False)
        err = p.stderr.decode(errors="replace")
        assert p.returncode == 1 and err.startswith("error: "), err
        for name in (str(path), *names):
            assert name in err, f"{name!r} not in {err!r}"

    refused(bad_gguf(tmp_path / "gemma.gguf", [("general.architecture", S, "gemma3")]), "general.architecture",
            "gemma3")
    refused(bad_gguf(tmp_path / "nolayers.gguf", [("general.architecture", S, "qwen3"),
                                                  ("qwen3.embedding_length", U32, 64)]), "qwen3.block_count")
    heads = [("general.architecture", S, "llama"), ("llama.embedding_length", U32, 64), ("llama.block_count", U32, 1),
             ("llama.feed_forward_length", U32, 128), ("llama.attention.head_count", U32, 4),
             ("llama.attention.head_count_kv", U32, 3)]
    refused(bad_gguf(tmp_path / "heads.gguf", heads), "llama.attention.head_count_kv")
    (tmp_path / "short.gguf").write_bytes(b"GGUF" + struct.pack("<I", 3))
    refused(tmp_path / "short.gguf")
