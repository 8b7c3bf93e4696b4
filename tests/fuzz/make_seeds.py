#!/usr/bin/python3
"""Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/).

Run once after changing it; the seeds are committed. Every seed is a valid
input (the fuzzer mutates from there): small PNGs of each colour layout and
JPEGs from stb's writer, a safetensors file per dtype, the default model's
config.json and tokenizer.json and a tiny BPE tokenizer, chat requests of
each kind, traces, the small GGUF files of tests/model/make_gguf.py, and
the chat templates of tests/tokenizer/jinja_templates.
Needs a C compiler and libstb-dev for the JPEGs, and python3-numpy.
"""
import base64
import json
import pathlib
import struct
import subprocess
import sys
import tempfile
import zlib

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CORPUS = HERE / "corpus"


def put(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (d / name).write_bytes(data)


def png(width, height, colour_type, bit_depth, rows, palette=None, trns=None, interlace=0):
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    raw = b"".join(b"\x00" + r for r in rows)
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, interlace))
    if palette:
        out += chunk(b"PLTE", palette)
    if trns:
        out += chunk(b"tRNS", trns)
    return out + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def images():
    put("image", "gray8.png", png(4, 3, 0, 8, [bytes([x * 60 + y for x in range(4)]) for y in range(3)]))
    put("image", "rgb8.png", png(3, 2, 2, 8, [bytes(range(y * 9, y * 9 + 9)) for y in range(2)]))
    put("image", "rgba8.png", png(2, 2, 6, 8, [bytes([255, 0, 0, 128, 0, 255, 0, 255]), bytes([0, 0, 255, 0, 9, 9, 9, 9])]))
    put("image", "gray16.png", png(2, 2, 0, 16, [b"\x12\x34\xff\xff", b"\x00\x00\x80\x00"]))
    put("image", "palette.png", png(4, 1, 3, 2, [bytes([0b00011011])], palette=bytes([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255]),
                                    trns=bytes([0, 255])))
    put("image", "graya.png", png(1, 2, 4, 8, [b"\x10\x20", b"\x30\x40"]))
    with tempfile.TemporaryDirectory() as tmp:
        src = pathlib.Path(tmp) / "jpeg.c"
        src.write_text(r'''
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>
int main(int argc, char** argv) {
  unsigned char rgb[16 * 16 * 3];
  for (int i = 0; i < 16 * 16 * 3; ++i) rgb[i] = (unsigned char)(i * 7);
  unsigned char gray[8 * 8];
  for (int i = 0; i < 64; ++i) gray[i] = (unsigned char)(i * 4);
  return !(stbi_write_jpg(argv[1], 16, 16, 3, rgb, 90) && stbi_write_jpg(argv[2], 8, 8, 1, gray, 50) &&
           stbi_write_jpg(argv[3], 17, 9, 3, rgb, 20));
}
''')
        exe = pathlib.Path(tmp) / "jpeg"
        subprocess.run(["cc", "-O1", "-o", str(exe), str(src), "-lm"], check=True)
        names = [pathlib.Path(tmp) / n for n in ("rgb.jpg", "gray.jpg", "odd.jpg")]
        subprocess.run([str(exe)] + [str(n) for n in names], check=True)
        for n in names:
            put("image", n.name, n.read_bytes())
    for sample in sorted((ROOT / "models/musespark-mini/samples").glob("*.png")):
        put("image", sample.name, sample.read_bytes())


def safetensors():
    def file(tensors, metadata=None):
        header, data = {}, b""
        if metadata:
            header["__metadata__"] = metadata
        for name, (dtype, shape, payload) in tensors.items():
            header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(payload)]}
            data += payload
        text = json.dumps(header, separators=(",", ":")).encode()
        text += b" " * (-len(text) % 8)
        return struct.pack("<Q", len(text)) + text + data
    put("safetensors", "f32.safetensors", file({"w": ("F32", [2, 2], struct.pack("<4f", 1, 2, 3, 4))}, {"format": "pt"}))
    put("safetensors", "mixed.safetensors", file({
        "a.weight": ("BF16", [3], b"\x80\x3f\x00\x40\x40\x40"),
        "b.weight": ("F16", [1, 2], b"\x00\x3c\x00\x40"),
        "c.scale": ("I8", [4], b"\x01\xff\x02\xfe"),
        "d.empty": ("F32", [0, 4], b""),
        "e.scalar": ("I64", [], struct.pack("<q", 7)),
    }))


def json_files():
    put("config", "musespark-mini.json", (ROOT / "models/musespark-mini/config.json").read_bytes())
    put("config", "vision.json", json.dumps({
        "model_type": "musespark", "vocab_size": 300, "hidden_size": 32, "intermediate_size": 64,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 256,
        "rope_theta": 10000.0, "rms_norm_eps": 1e-6, "tie_word_embeddings": True,
        "vision_config": {"image_size": 64, "patch_size": 8, "hidden_size": 32, "intermediate_size": 64,
                          "num_hidden_layers": 1, "num_attention_heads": 2, "merge_size": 2},
        "image_token_id": 299}))
    put("tokenizer", "musespark-mini.json", (ROOT / "models/musespark-mini/tokenizer.json").read_bytes())
    vocab = {chr(c): i for i, c in enumerate(range(33, 127))}
    vocab.update({"\u0120": len(vocab), "he": len(vocab) + 1, "ll": len(vocab) + 2, "hell": len(vocab) + 3})
    put("tokenizer", "tiny-bpe.json", json.dumps({
        "version": "1.0",
        "added_tokens": [{"id": 200, "content": "<|im_end|>", "special": True, "single_word": False, "lstrip": False,
                          "rstrip": False, "normalized": False}],
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": "\\s+|\\p{L}+|\\p{N}{1,3}|[^\\s\\p{L}\\p{N}]+"},
             "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}]},
        "decoder": {"type": "ByteLevel"},
        "model": {"type": "BPE", "vocab": vocab, "merges": ["h e", "l l", "he ll"], "byte_fallback": False,
                  "ignore_merges": False}}))


def requests():
    one_pixel = base64.b64encode(png(1, 1, 2, 8, [b"\xff\x00\x00"])).decode()
    put("chat_request", "plain.json", json.dumps({"model": "musespark-mini", "messages": [{"role": "user", "content": "2+2?"}]}))
    put("chat_request", "full.json", json.dumps({
        "model": "musespark-mini", "stream": True, "stream_options": {"include_usage": True},
        "messages": [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "What is 17*3?"},
                     {"role": "assistant", "content": "51"}, {"role": "user", "content": "And 18*3?"}],
        "max_tokens": 64, "max_completion_tokens": 48, "temperature": 0.7, "top_p": 0.9, "seed": 42,
        "reasoning_effort": "high", "stop": ["\n\n"],
        "musespark": {"mode": "contemplating", "agents": 4, "trace": True}}))
    put("chat_request", "image.json", json.dumps({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What colour?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + one_pixel}}]}]}))
    put("chat_request", "bad-role.json", json.dumps({"messages": [{"role": "tool", "content": "x"}]}))


def traces():
    doc = (ROOT / "docs/trace.md").read_text()
    start = doc.index("```json\n") + len("```json\n")
    put("trace", "docs-example.json", doc[start:doc.index("\n```", start)])
    put("trace", "minimal.json", json.dumps({"schema_version": 1, "agents": []}))
    put("trace", "nulls.json", json.dumps({"schema_version": 1, "agents": [
        {"id": 0, "confidence": {"mean": None}, "token_confidence": [1.5, None, 0.1], "stop_reason": "cancelled"}],
        "early_stop_threshold": None, "visual_actions": [{"agent": 0, "kind": "zoom", "relative": [0, 0, 500, 500],
                                                          "box": [0, 0, 8, 8], "applied": True}]}))


def gguf():
    """The small valid files of tests/model/make_gguf.py: every metadata value type and tensor type,
    version 2 with alignment 64, and no tensors."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["/usr/bin/python3", str(ROOT / "tests/model/make_gguf.py"), tmp], check=True)
        for name in ("types.gguf", "v2_align64.gguf", "no_tensors.gguf"):
            put("gguf", name, (pathlib.Path(tmp) / "valid" / name).read_bytes())


def templates():
    # Ours, which use what the real chat templates use (those stay in node_modules).
    for path in sorted((ROOT / "tests/tokenizer/jinja_templates").glob("*.jinja")):
        put("jinja", path.name, path.read_bytes())
    put("jinja", "small.jinja", "{%- for m in messages if m.role != 'tool' -%}{{ loop.index }}{{ m.content | trim | tojson }}"
        "{% else %}{{ raise_exception('none') }}{%- endfor %}{% set ns = namespace(x=[1, 2.5, none]) %}{{ ns.x[::-1] }}")


def main():
    images()
    safetensors()
    json_files()
    requests()
    traces()
    gguf()
    templates()
    print("seeds:", sum(1 for _ in CORPUS.rglob("*") if _.is_file()), "files under", CORPUS.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
