#!/usr/bin/python3
"""Writes small GGUF files for tests/model/test_gguf.cpp, independently of the C++ reader.

    make_gguf.py OUT_DIR

writes into OUT_DIR:
  valid/*.gguf           well-formed files: metadata of every value type, and
                         tensors of every type the reader dequantizes
  valid/<file>.<tensor>.f32
                         the expected dequantized values (raw little-endian float32)
  manifest.json          for each valid file: version, alignment, data offset,
                         metadata (key, type number, value) and tensors (name,
                         type number, shape, offset, byte size)
  broken/*.gguf          one defect each (named by the file name); the C++ test
                         says which field each must blame

The quantizers are plain numpy: any rounding is fine as long as the bytes follow
ggml's block layouts. The expected floats are computed from the block fields
(scales, mins, quants as integers) before they are packed, in ggml's order of
float32 operations, so they test the C++ unpacking and arithmetic.
Needs Debian's python3-numpy.
"""
import json
import pathlib
import struct
import sys

import numpy as np

F32 = np.dtype("<f4")
F16 = np.dtype("<f2")

# GGUF metadata value types.
U8, I8, U16, I16, U32, I32, FLOAT32, BOOL, STRING, ARRAY, U64, I64, FLOAT64 = range(13)
SCALAR_FORMAT = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", FLOAT32: "<f", BOOL: "<B",
                 U64: "<Q", I64: "<q", FLOAT64: "<d"}

# ggml tensor types: number, elements per block, bytes per block.
GGML = {
    "F32": (0, 1, 4), "F16": (1, 1, 2), "Q4_0": (2, 32, 18), "Q4_1": (3, 32, 20), "Q5_0": (6, 32, 22),
    "Q5_1": (7, 32, 24), "Q8_0": (8, 32, 34), "Q8_1": (9, 32, 36), "Q2_K": (10, 256, 84), "Q3_K": (11, 256, 110),
    "Q4_K": (12, 256, 144), "Q5_K": (13, 256, 176), "Q6_K": (14, 256, 210), "Q8_K": (15, 256, 292),
    "IQ4_NL": (20, 32, 18), "BF16": (30, 1, 2),
}


# ---------------------------------------------------------------------------
# Encoding


def gguf_string(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def encode_value(vtype, value):
    """The bytes of one value (without its type). An array value is (element_type, [values])."""
    if vtype == STRING:
        return gguf_string(value)
    if vtype == ARRAY:
        etype, items = value
        return struct.pack("<IQ", etype, len(items)) + b"".join(encode_value(etype, v) for v in items)
    return struct.pack(SCALAR_FORMAT[vtype], int(value) if vtype == BOOL else value)


def kv_bytes(key, vtype, value):
    return gguf_string(key) + struct.pack("<I", vtype) + encode_value(vtype, value)


def tensor_info_bytes(name, dims, type_number, offset):
    return gguf_string(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims) + \
        struct.pack("<IQ", type_number, offset)


def pad(n, alignment):
    return (-n) % alignment


def gguf_file(kvs, tensors, version=3, alignment=32, raw_kvs=(), magic=b"GGUF", counts=None):
    """kvs: [(key, type, value)]; tensors: [(name, dims, type_number, data_bytes)], laid out in order,
    each at an aligned offset. raw_kvs: already-encoded pairs appended after kvs.
    counts: (tensor_count, kv_count) to write instead of the true ones.
    Returns (file bytes, [offsets], data section offset)."""
    body = b"".join(kv_bytes(*kv) for kv in kvs) + b"".join(raw_kvs)
    offsets, data = [], b""
    for _, _, _, payload in tensors:
        data += b"\0" * pad(len(data), alignment)
        offsets.append(len(data))
        data += payload
    infos = b"".join(tensor_info_bytes(n, d, t, o) for (n, d, t, _), o in zip(tensors, offsets))
    n_tensors, n_kv = counts or (len(tensors), len(kvs) + len(raw_kvs))
    head = magic + struct.pack("<IQQ", version, n_tensors, n_kv) + body + infos
    if not tensors:
        return head, offsets, len(head) + pad(len(head), alignment)
    data_offset = len(head) + pad(len(head), alignment)
    return head + b"\0" * pad(len(head), alignment) + data, offsets, data_offset


# ---------------------------------------------------------------------------
# Quantizers. Each takes float32 x of shape (rows, row_length) and returns
# (bytes, expected float32 of the same shape). Blocks are rows of a uint8
# array (n_blocks, block_bytes), built field by field.


def f32(a):
    return np.asarray(a, dtype=F32)


def as_bytes(*fields):
    """Concatenates per-block fields (each (n_blocks, ...)) into (n_blocks, bytes)."""
    parts = [np.ascontiguousarray(f).view(np.uint8).reshape(f.shape[0], -1) for f in fields]
    return np.concatenate(parts, axis=1)


def safe_inverse(d):
    out = np.zeros_like(d)
    np.divide(1.0, d, out=out, where=d != 0)
    return out


def signed_absmax(b):
    """Per row of b, the element of largest magnitude, with its sign."""
    return np.take_along_axis(b, np.abs(b).argmax(axis=1)[:, None], axis=1)[:, 0]


def quant_q8_0(x, with_sum=False):
    b = x.reshape(-1, 32)
    d = f32(np.abs(b).max(axis=1) / 127).astype(F16)
    q = np.clip(np.rint(b * safe_inverse(d.astype(F32))[:, None]), -128, 127).astype(np.int8)
    y = q.astype(F32) * d.astype(F32)[:, None]
    if with_sum:  # Q8_1: s = d * sum(q), unused by dequantization
        s = (d.astype(F32) * q.astype(F32).sum(axis=1)).astype(F16)
        return as_bytes(d, s, q).tobytes(), y
    return as_bytes(d, q).tobytes(), y


def nibbles(lo, hi):
    return (lo.astype(np.uint8) | (hi.astype(np.uint8) << 4)).astype(np.uint8)


def quant_q4_0(x):
    b = x.reshape(-1, 32)
    d = f32(signed_absmax(b) / -8).astype(F16)
    q = np.clip(np.rint(b * safe_inverse(d.astype(F32))[:, None] + 8), 0, 15).astype(np.int32)
    y = (q - 8).astype(F32) * d.astype(F32)[:, None]
    return as_bytes(d, nibbles(q[:, :16], q[:, 16:])).tobytes(), y


def quant_q4_1(x):
    b = x.reshape(-1, 32)
    lo, hi = b.min(axis=1), b.max(axis=1)
    d = f32((hi - lo) / 15).astype(F16)
    m = lo.astype(F16)
    q = np.clip(np.rint((b - m.astype(F32)[:, None]) * safe_inverse(d.astype(F32))[:, None]), 0, 15).astype(np.int32)
    y = q.astype(F32) * d.astype(F32)[:, None] + m.astype(F32)[:, None]
    return as_bytes(d, m, nibbles(q[:, :16], q[:, 16:])).tobytes(), y


def high_bits_u32(q):
    """Bit j of the result is bit 4 of q[:, j] (32 elements per block)."""
    bits = ((q >> 4) & 1).astype(np.uint64)
    return (bits << np.arange(32, dtype=np.uint64)).sum(axis=1).astype("<u4")


def quant_q5_0(x):
    b = x.reshape(-1, 32)
    d = f32(signed_absmax(b) / -16).astype(F16)
    q = np.clip(np.rint(b * safe_inverse(d.astype(F32))[:, None] + 16), 0, 31).astype(np.int32)
    y = (q - 16).astype(F32) * d.astype(F32)[:, None]
    return as_bytes(d, high_bits_u32(q), nibbles(q[:, :16] & 15, q[:, 16:] & 15)).tobytes(), y


def quant_q5_1(x):
    b = x.reshape(-1, 32)
    lo, hi = b.min(axis=1), b.max(axis=1)
    d = f32((hi - lo) / 31).astype(F16)
    m = lo.astype(F16)
    q = np.clip(np.rint((b - m.astype(F32)[:, None]) * safe_inverse(d.astype(F32))[:, None]), 0, 31).astype(np.int32)
    y = q.astype(F32) * d.astype(F32)[:, None] + m.astype(F32)[:, None]
    return as_bytes(d, m, high_bits_u32(q), nibbles(q[:, :16] & 15, q[:, 16:] & 15)).tobytes(), y


def k_scales_mins(b, levels, sub):
    """For super-blocks b (n, 256) with sub-blocks of `sub`: 6-bit scales and mins (ints), fp16 d and dmin,
    and the quants (ints in 0..levels). Value = d*sc*q - dmin*m."""
    n = b.shape[0]
    s = b.reshape(n, 256 // sub, sub)
    lo = np.minimum(s.min(axis=2), 0)
    hi = s.max(axis=2)
    scale, minv = (hi - lo) / levels, -lo
    d = f32(scale.max(axis=1) / 63).astype(F16)
    dmin = f32(minv.max(axis=1) / 63).astype(F16)
    sc = np.clip(np.rint(scale * safe_inverse(d.astype(F32))[:, None]), 0, 63).astype(np.int32)
    m = np.clip(np.rint(minv * safe_inverse(dmin.astype(F32))[:, None]), 0, 63).astype(np.int32)
    step = d.astype(F32)[:, None] * sc.astype(F32)
    offset = dmin.astype(F32)[:, None] * m.astype(F32)
    q = np.clip(np.rint((s + offset[:, :, None]) * safe_inverse(step)[:, :, None]), 0, levels).astype(np.int32)
    y = step[:, :, None] * q.astype(F32) - offset[:, :, None]
    return d, dmin, sc, m, q.reshape(n, 256), y.reshape(n, 256)


def pack_k4_scales(sc, m):
    """Eight 6-bit (scale, min) pairs into 12 bytes, the layout ggml's get_scale_min_k4 reads."""
    out = np.zeros((sc.shape[0], 12), dtype=np.uint8)
    for j in range(4):
        out[:, j] = (sc[:, j] | ((sc[:, j + 4] >> 4) << 6)).astype(np.uint8)
        out[:, j + 4] = (m[:, j] | ((m[:, j + 4] >> 4) << 6)).astype(np.uint8)
        out[:, j + 8] = ((sc[:, j + 4] & 15) | ((m[:, j + 4] & 15) << 4)).astype(np.uint8)
    return out


def quant_q4_k(x):
    b = x.reshape(-1, 256)
    d, dmin, sc, m, q, y = k_scales_mins(b, 15, 32)
    g = q.reshape(-1, 4, 2, 32)  # groups of 64: first 32 in low nibbles, next 32 in high
    qs = nibbles(g[:, :, 0, :], g[:, :, 1, :]).reshape(-1, 128)
    return as_bytes(d, dmin, pack_k4_scales(sc, m), qs).tobytes(), y


def quant_q5_k(x):
    b = x.reshape(-1, 256)
    d, dmin, sc, m, q, y = k_scales_mins(b, 31, 32)
    g = q.reshape(-1, 4, 2, 32)
    qs = nibbles(g[:, :, 0, :] & 15, g[:, :, 1, :] & 15).reshape(-1, 128)
    qh = np.zeros((b.shape[0], 32), dtype=np.uint8)
    for j in range(4):  # bit 2j: fifth bit of the low nibbles of group j; bit 2j+1: of the high ones
        qh |= (((g[:, j, 0, :] >> 4) & 1) << (2 * j)).astype(np.uint8)
        qh |= (((g[:, j, 1, :] >> 4) & 1) << (2 * j + 1)).astype(np.uint8)
    return as_bytes(d, dmin, pack_k4_scales(sc, m), qh, qs).tobytes(), y


def quant_q6_k(x):
    b = x.reshape(-1, 256)
    n = b.shape[0]
    s = b.reshape(n, 16, 16)
    scale = signed_absmax(s.reshape(-1, 16)).reshape(n, 16) / -32  # negative scales too
    d = f32(np.abs(scale).max(axis=1) / 127).astype(F16)
    sc = np.clip(np.rint(scale * safe_inverse(d.astype(F32))[:, None]), -128, 127).astype(np.int8)
    step = d.astype(F32)[:, None] * sc.astype(F32)
    q = np.clip(np.rint(s * safe_inverse(step)[:, :, None]), -32, 31).astype(np.int32)
    y = (step[:, :, None] * q.astype(F32)).reshape(n, 256)
    u = (q + 32).reshape(n, 2, 4, 32)  # halves of 128: four runs of 32
    ql = np.concatenate([nibbles(u[:, :, 0] & 15, u[:, :, 2] & 15), nibbles(u[:, :, 1] & 15, u[:, :, 3] & 15)],
                        axis=2).reshape(n, 128)
    qh = ((u[:, :, 0] >> 4) | ((u[:, :, 1] >> 4) << 2) | ((u[:, :, 2] >> 4) << 4) | ((u[:, :, 3] >> 4) << 6))
    return as_bytes(ql, qh.astype(np.uint8).reshape(n, 64), sc, d).tobytes(), y


def quant_q2_k(x):
    b = x.reshape(-1, 256)
    n = b.shape[0]
    s = b.reshape(n, 16, 16)
    lo = np.minimum(s.min(axis=2), 0)
    scale, minv = (s.max(axis=2) - lo) / 3, -lo
    d = f32(scale.max(axis=1) / 15).astype(F16)
    dmin = f32(minv.max(axis=1) / 15).astype(F16)
    sc = np.clip(np.rint(scale * safe_inverse(d.astype(F32))[:, None]), 0, 15).astype(np.int32)
    m = np.clip(np.rint(minv * safe_inverse(dmin.astype(F32))[:, None]), 0, 15).astype(np.int32)
    dl = d.astype(F32)[:, None] * sc.astype(F32)
    ml = dmin.astype(F32)[:, None] * m.astype(F32)
    q = np.clip(np.rint((s + ml[:, :, None]) * safe_inverse(dl)[:, :, None]), 0, 3).astype(np.int32)
    y = (dl[:, :, None] * q.astype(F32) - ml[:, :, None]).reshape(n, 256)
    # Element 128h + 32j + k sits in qs[32h + k], bits 2j.
    g = q.reshape(n, 2, 4, 32)
    qs = (g[:, :, 0] | (g[:, :, 1] << 2) | (g[:, :, 2] << 4) | (g[:, :, 3] << 6)).astype(np.uint8).reshape(n, 64)
    scales = (sc | (m << 4)).astype(np.uint8)
    return as_bytes(scales, qs, d, dmin).tobytes(), y


def pack_q3_scales(s6):
    """Sixteen 6-bit scales (0..63) into 12 bytes: low nibbles of 0..7 and 8..15 in bytes 0..7, the top two
    bits of scale i in byte 8 + i % 4 at bit 2 * (i // 4)."""
    out = np.zeros((s6.shape[0], 12), dtype=np.uint8)
    for i in range(8):
        out[:, i] = ((s6[:, i] & 15) | ((s6[:, i + 8] & 15) << 4)).astype(np.uint8)
    for i in range(16):
        out[:, 8 + i % 4] |= (((s6[:, i] >> 4) & 3) << (2 * (i // 4))).astype(np.uint8)
    return out


def unpack_q3_scales_like_ggml(raw):
    """ggml's way (three 32-bit words, masks, shifts), as a check of pack_q3_scales."""
    aux = np.zeros((raw.shape[0], 4), dtype="<u4")
    aux[:, :3] = raw.view("<u4")
    tmp = aux[:, 2].copy()
    k1, k2 = np.uint32(0x03030303), np.uint32(0x0F0F0F0F)
    a0, a1 = aux[:, 0].copy(), aux[:, 1].copy()
    aux[:, 2] = ((a0 >> 4) & k2) | (((tmp >> 4) & k1) << 4)
    aux[:, 3] = ((a1 >> 4) & k2) | (((tmp >> 6) & k1) << 4)
    aux[:, 0] = (a0 & k2) | (((tmp >> 0) & k1) << 4)
    aux[:, 1] = (a1 & k2) | (((tmp >> 2) & k1) << 4)
    return aux.view(np.int8).astype(np.int32)


def quant_q3_k(x):
    b = x.reshape(-1, 256)
    n = b.shape[0]
    s = b.reshape(n, 16, 16)
    scale = signed_absmax(s.reshape(-1, 16)).reshape(n, 16) / -4
    d = f32(np.abs(scale).max(axis=1) / 32).astype(F16)
    sc = np.clip(np.rint(scale * safe_inverse(d.astype(F32))[:, None]), -32, 31).astype(np.int32)
    dl = d.astype(F32)[:, None] * sc.astype(F32)
    q = np.clip(np.rint(s * safe_inverse(dl)[:, :, None]), -4, 3).astype(np.int32)
    y = (dl[:, :, None] * q.astype(F32)).reshape(n, 256)
    u = (q + 4).reshape(n, 2, 4, 32)  # element 128h + 32j + k: low bits in qs[32h + k] at 2j, high in hmask[k] bit 4h+j
    qs = ((u[:, :, 0] & 3) | ((u[:, :, 1] & 3) << 2) | ((u[:, :, 2] & 3) << 4) | ((u[:, :, 3] & 3) << 6))
    hmask = np.zeros((n, 32), dtype=np.uint8)
    for h in range(2):
        for j in range(4):
            hmask |= ((u[:, h, j] >> 2) << (4 * h + j)).astype(np.uint8)
    raw = pack_q3_scales(sc + 32)
    assert (unpack_q3_scales_like_ggml(raw) - 32 == sc).all(), "Q3_K scale packing disagrees with ggml's unpacking"
    return as_bytes(hmask, qs.astype(np.uint8).reshape(n, 64), raw, d).tobytes(), y


def quant_q8_k(x):
    b = x.reshape(-1, 256)
    d = f32(np.abs(b).max(axis=1) / 127)
    q = np.clip(np.rint(b * safe_inverse(d)[:, None]), -128, 127).astype(np.int8)
    bsums = q.astype(np.int32).reshape(-1, 16, 16).sum(axis=2).astype("<i2")
    y = d[:, None] * q.astype(F32)
    return as_bytes(d, q, bsums).tobytes(), y


def plain_f32(x):
    return f32(x).astype("<f4").tobytes(), f32(x)


def plain_f16(x):
    h = x.astype(F16)
    return h.tobytes(), h.astype(F32)


def plain_bf16(x):
    bits = (f32(x).view("<u4") >> 16).astype("<u2")  # truncation: any rounding is fine
    return bits.tobytes(), (bits.astype("<u4") << 16).view(F32)


QUANTIZERS = {
    "F32": plain_f32, "F16": plain_f16, "BF16": plain_bf16, "Q8_0": quant_q8_0,
    "Q8_1": lambda x: quant_q8_0(x, with_sum=True), "Q4_0": quant_q4_0, "Q4_1": quant_q4_1, "Q5_0": quant_q5_0,
    "Q5_1": quant_q5_1, "Q2_K": quant_q2_k, "Q3_K": quant_q3_k, "Q4_K": quant_q4_k, "Q5_K": quant_q5_k,
    "Q6_K": quant_q6_k, "Q8_K": quant_q8_k,
}


# ---------------------------------------------------------------------------
# Valid files


def metadata_of_every_type():
    return [
        ("general.architecture", STRING, "qwen3"),
        ("general.name", STRING, "tiny \u00e9t\u00e9 \U0001f600"),
        ("general.empty", STRING, ""),
        ("general.with_nul", STRING, "a\0b"),
        ("qwen3.block_count", U32, 28),
        ("qwen3.context_length", U64, 40960),
        ("test.u8", U8, 255), ("test.i8", I8, -128),
        ("test.u16", U16, 65535), ("test.i16", I16, -32768),
        ("test.u32", U32, 4294967295), ("test.i32", I32, -2147483648),
        ("test.u64", U64, 18446744073709551615), ("test.i64", I64, -9223372036854775808),
        ("test.f32", FLOAT32, float(np.float32(1e-6))), ("test.f32_negzero", FLOAT32, -0.0),
        ("test.f64", FLOAT64, 3.141592653589793),
        ("test.true", BOOL, True), ("test.false", BOOL, False),
        ("test.small_i64", I64, 7), ("test.negative_i32", I32, -5),
        ("test.arr_u8", ARRAY, (U8, [0, 1, 255])), ("test.arr_i8", ARRAY, (I8, [-128, 0, 127])),
        ("test.arr_u16", ARRAY, (U16, [1, 65535])), ("test.arr_i16", ARRAY, (I16, [-32768, 32767])),
        ("test.arr_u32", ARRAY, (U32, [1, 2, 4294967295])), ("test.arr_i32", ARRAY, (I32, [-1, 0, 2147483647])),
        ("test.arr_u64", ARRAY, (U64, [18446744073709551615, 0])),
        ("test.arr_i64", ARRAY, (I64, [-9223372036854775808, 9223372036854775807])),
        ("test.arr_f32", ARRAY, (FLOAT32, [float(np.float32(v)) for v in (0.1, -2.5, 1e30)])),
        ("test.arr_f64", ARRAY, (FLOAT64, [0.1, -1e300])),
        ("test.arr_bool", ARRAY, (BOOL, [True, False, True])),
        ("test.arr_empty", ARRAY, (U32, [])),
        ("tokenizer.ggml.tokens", ARRAY, (STRING, ["<s>", "", "\u0120hello", "\u4e16\u754c", "a\0b"])),
        ("tokenizer.ggml.token_type", ARRAY, (I32, [3, 1, 1, 1, 1])),
        ("tokenizer.ggml.scores", ARRAY, (FLOAT32, [0.0, -1.0, -2.5, -3.0, -4.0])),
        ("test.nested", ARRAY, (ARRAY, [(U8, [1, 2]), (STRING, ["x", "yz"]), (ARRAY, [(I64, [-1]), (U16, [])]),
                                        (FLOAT32, [])])),
        ("test.nested_empty", ARRAY, (ARRAY, [])),
    ]


def json_value(vtype, value):
    if vtype == ARRAY:
        etype, items = value
        return {"element_type": etype, "items": [json_value(etype, v) for v in items]}
    return value


def tensor_data(rng, shape):
    x = f32(rng.standard_normal(int(np.prod(shape))) * rng.uniform(0.01, 3)).reshape(shape)
    flat = x.reshape(-1)
    flat[:32] = 0  # a block of zeros: scale 0
    flat[32:64] = np.abs(flat[32:64]) + 0.5  # all positive
    flat[64:96] = -np.abs(flat[64:96]) - 0.5  # all negative
    return x


class Valid:
    def __init__(self, out):
        self.out = out
        (out / "valid").mkdir(parents=True, exist_ok=True)
        self.manifest = {}

    def write(self, name, kvs, tensors, version=3, alignment=32):
        """tensors: [(tensor name, type name, shape in GGUF order, payload bytes, expected float32 or None)]."""
        data, offsets, data_offset = gguf_file(kvs, [(n, s, GGML[t][0], p) for n, t, s, p, _ in tensors], version,
                                               alignment)
        (self.out / "valid" / name).write_bytes(data)
        entries = []
        for (tname, tname_type, shape, payload, expected), offset in zip(tensors, offsets):
            entry = {"name": tname, "type": GGML[tname_type][0], "type_name": tname_type, "shape": list(shape),
                     "offset": offset, "nbytes": len(payload)}
            if expected is not None:
                entry["expected"] = f"{name}.{tname}.f32"
                (self.out / "valid" / entry["expected"]).write_bytes(f32(expected).astype("<f4").tobytes())
            entries.append(entry)
        self.manifest[name] = {
            "version": version, "alignment": alignment, "data_offset": data_offset, "size": len(data),
            "metadata": [{"key": k, "type": t, "value": json_value(t, v)} for k, t, v in kvs],
            "tensors": entries,
        }


def quantized(rng, name, type_name, shape):
    # GGUF shape [ne0, ne1, ...]: numpy holds it reversed, rows of ne0.
    x = tensor_data(rng, tuple(reversed(shape)))
    payload, expected = QUANTIZERS[type_name](x.reshape(-1, shape[0] if shape else 1))
    return (name, type_name, shape, payload, np.asarray(expected).reshape(-1))


def write_valid(out):
    rng = np.random.default_rng(1234)
    v = Valid(out)
    tensors = []
    for type_name in QUANTIZERS:
        block = GGML[type_name][1]
        row = 512 if block == 256 else 96 if block == 32 else 40
        tensors.append(quantized(rng, f"blk.0.{type_name.lower()}.weight", type_name, [row, 3]))
    tensors.append(quantized(rng, "q8_0_3d", "Q8_0", [32, 2, 3]))
    tensors.append(quantized(rng, "f32_4d", "F32", [2, 3, 4, 5]))
    tensors.append(quantized(rng, "f32_1d", "F32", [7]))
    tensors.append(("f32_scalar", "F32", [], struct.pack("<f", 2.5), f32([2.5])))
    tensors.append(("f32_empty", "F32", [4, 0], b"", f32([])))
    # A type the reader knows but does not dequantize: listed, not converted.
    tensors.append(("iq4_nl", "IQ4_NL", [64, 2], bytes(rng.integers(0, 256, 4 * 18, dtype=np.uint8)), None))
    v.write("types.gguf", metadata_of_every_type(), tensors)

    # Every f16 and bf16 bit pattern (infinities and NaNs included).
    bits = np.arange(65536, dtype="<u2")
    v.write("all_halves.gguf", [("general.architecture", STRING, "test")], [
        ("f16", "F16", [256, 256], bits.tobytes(), bits.view(F16).astype(F32)),
        ("bf16", "BF16", [65536], bits.tobytes(), (bits.astype("<u4") << 16).view(F32)),
    ])

    # Version 2, alignment 64, tensors of several sizes so the padding varies.
    v.write("v2_align64.gguf", [("general.architecture", STRING, "llama"), ("general.alignment", U32, 64)],
            [quantized(rng, "a", "Q4_0", [32]), quantized(rng, "b", "F16", [3, 1]),
             quantized(rng, "c", "Q6_K", [256, 2])], version=2, alignment=64)

    # No tensors: the file ends right after the metadata, before any padding.
    v.write("no_tensors.gguf", [("general.architecture", STRING, "none"), ("x", U8, 1)], [])
    (out / "manifest.json").write_text(json.dumps(v.manifest, indent=1))


# ---------------------------------------------------------------------------
# Broken files: each has one defect, found at the field the test expects.


def write_broken(out):
    d = out / "broken"
    d.mkdir(parents=True, exist_ok=True)

    def put(name, data):
        (d / name).write_bytes(data)

    arch = [("general.architecture", STRING, "llama")]
    f32_tensor = [("w", [8], 0, struct.pack("<8f", *range(8)))]
    good, _, _ = gguf_file(arch, f32_tensor)

    put("wrong_magic.gguf", b"GGML" + good[4:])
    put("version_1.gguf", good[:4] + struct.pack("<I", 1) + good[8:])
    put("version_99.gguf", good[:4] + struct.pack("<I", 99) + good[8:])
    put("big_endian.gguf", good[:4] + struct.pack(">I", 3) + good[8:])
    put("kv_count_huge.gguf", gguf_file(arch, [], counts=(0, 1 << 62))[0])
    put("tensor_count_huge.gguf", gguf_file(arch, [], counts=(1 << 40, 1))[0])
    # general.name: a string length far beyond the file.
    put("string_past_end.gguf", gguf_file([], [], counts=(0, 1))[0] + gguf_string("general.name") +
        struct.pack("<IQ", STRING, 1000000) + b"abc")
    put("key_past_end.gguf", gguf_file([], [], counts=(0, 1))[0] + struct.pack("<Q", 1 << 40) + b"general.name" + b"\0" * 16)
    put("array_count_huge.gguf", gguf_file(arch, [], raw_kvs=[
        gguf_string("test.big") + struct.pack("<IIQ", ARRAY, U32, 1 << 62) + b"\0" * 16])[0])
    put("string_array_count_huge.gguf", gguf_file(arch, [], raw_kvs=[
        gguf_string("tokenizer.ggml.tokens") + struct.pack("<IIQ", ARRAY, STRING, 1 << 62) + b"\0" * 16])[0])
    put("string_in_array_past_end.gguf", gguf_file(arch, [], raw_kvs=[
        gguf_string("tokenizer.ggml.tokens") + struct.pack("<IIQ", ARRAY, STRING, 2) + gguf_string("ok") +
        struct.pack("<Q", 500) + b"short"])[0])
    nested = struct.pack("<IQ", U8, 0)
    for _ in range(20):
        nested = struct.pack("<IQ", ARRAY, 1) + nested
    put("nested_too_deep.gguf", gguf_file(arch, [], raw_kvs=[gguf_string("test.deep") + struct.pack("<I", ARRAY) +
                                                             nested])[0])
    put("unknown_value_type.gguf", gguf_file(arch, [], raw_kvs=[gguf_string("test.odd") + struct.pack("<IQ", 13, 0)])[0])
    put("unknown_element_type.gguf", gguf_file(arch, [], raw_kvs=[
        gguf_string("test.odd") + struct.pack("<IIQ", ARRAY, 42, 0)])[0])
    put("bool_2.gguf", gguf_file(arch, [], raw_kvs=[gguf_string("test.flag") + struct.pack("<IB", BOOL, 2)])[0])
    put("duplicate_key.gguf", gguf_file(arch + [("general.architecture", STRING, "again")], [])[0])
    put("empty_key.gguf", gguf_file(arch + [("", U8, 1)], [])[0])
    put("alignment_0.gguf", gguf_file(arch + [("general.alignment", U32, 0)], [])[0])
    put("alignment_48.gguf", gguf_file(arch + [("general.alignment", U32, 48)], [])[0])
    put("alignment_u64.gguf", gguf_file(arch + [("general.alignment", U64, 32)], [])[0])

    def with_info(name, dims, type_number, offset, data_bytes=b"\0" * 64, kvs=arch):
        head = b"GGUF" + struct.pack("<IQQ", 3, 1, len(kvs)) + b"".join(kv_bytes(*kv) for kv in kvs) + \
            tensor_info_bytes(name, dims, type_number, offset)
        return head + b"\0" * pad(len(head), 32) + data_bytes

    put("offset_past_end.gguf", with_info("w", [8], 0, 1 << 20))
    put("offset_huge.gguf", with_info("w", [8], 0, (1 << 64) - 32))
    put("offset_misaligned.gguf", with_info("w", [8], 0, 4))
    put("data_past_end.gguf", with_info("w", [32], 0, 0))  # 128 bytes needed, 64 there
    put("unknown_ggml_type.gguf", with_info("w", [8], 31, 0))
    put("ggml_type_huge.gguf", with_info("w", [8], 1000, 0))
    put("dims_overflow.gguf", with_info("w", [1 << 32, 1 << 32], 0, 0))
    put("dims_overflow_with_zero.gguf", with_info("w", [0, 1 << 32, 1 << 32], 0, 0))  # 0 elements, still refused
    put("dim_beyond_int64.gguf", with_info("w", [1 << 63], 0, 0))
    put("bytes_overflow.gguf", with_info("w", [1 << 62], 0, 0))  # 2^62 floats: 2^64 bytes
    put("too_many_dims.gguf", with_info("w", [1, 1, 1, 1, 1], 0, 0))
    put("row_not_multiple.gguf", with_info("w", [100, 2], GGML["Q4_K"][0], 0))
    put("row_not_multiple_q8_0.gguf", with_info("w", [33], GGML["Q8_0"][0], 0))
    two = [("w", [8], 0, b"\0" * 32), ("w", [8], 0, b"\0" * 32)]
    put("duplicate_tensor.gguf", gguf_file(arch, two)[0])
    # Two tensors at the same offset.
    head = b"GGUF" + struct.pack("<IQQ", 3, 2, 1) + kv_bytes(*arch[0]) + tensor_info_bytes("a", [16], 0, 0) + \
        tensor_info_bytes("b", [8], 0, 32)
    put("overlap.gguf", head + b"\0" * pad(len(head), 32) + b"\0" * 64)
    # Truncated inside the tensor data.
    types, _, _ = gguf_file(arch, [("w", [64], 0, b"\1" * 256)])
    put("truncated_data.gguf", types[:-1])
    put("empty.gguf", b"")
    put("three_bytes.gguf", b"GGU")


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = pathlib.Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    write_valid(out)
    write_broken(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
