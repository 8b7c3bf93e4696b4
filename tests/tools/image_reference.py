#!/usr/bin/python3
"""Independent references for the image layer (numpy + torch; no PIL).

    image_reference.py preprocess RGB_FILE WIDTH HEIGHT SIZE OUT_FILE --mean R,G,B --std R,G,B
        RGB_FILE holds WIDTH*HEIGHT*3 bytes (row-major RGB). Computes what
        musespark::detail::preprocess must: x = bytes / 255 (float32),
        torch.nn.functional.interpolate(size=(SIZE, SIZE), mode="bilinear",
        align_corners=False, antialias=False), then (x - mean) / std per
        channel. Writes the CHW result as raw little-endian float32 to OUT_FILE.

    image_reference.py png KIND OUT_PNG OUT_RGB
        Writes a small PNG of a KIND stb_image_write cannot produce, encoded
        here with zlib by hand, and the RGB bytes a decoder must return for
        it (16-bit samples reduced to their high byte; alpha composited over
        white as round((v*a + 255*(255-a)) / 255)). KIND is one of
        gray16, rgb16, rgba16, palette (with a tRNS alpha table),
        gray_trns (8-bit gray with a tRNS transparent colour key).
        Prints "WIDTH HEIGHT".
"""

from __future__ import annotations

import argparse
import struct
import sys
import zlib

import numpy as np


def preprocess(args: argparse.Namespace) -> None:
    import torch
    import torch.nn.functional as F

    rgb = np.fromfile(args.rgb_file, dtype=np.uint8)
    if rgb.size != args.width * args.height * 3:
        sys.exit(f"{args.rgb_file}: {rgb.size} bytes, expected {args.width}x{args.height}x3")
    image = torch.from_numpy(rgb.reshape(args.height, args.width, 3).copy())
    x = image.permute(2, 0, 1).unsqueeze(0).to(torch.float32) / 255.0
    x = F.interpolate(x, size=(args.size, args.size), mode="bilinear", align_corners=False, antialias=False)
    mean = torch.tensor([float(v) for v in args.mean.split(",")], dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor([float(v) for v in args.std.split(",")], dtype=torch.float32).view(1, 3, 1, 1)
    x = (x - mean) / std
    x[0].contiguous().numpy().astype("<f4").tofile(args.out_file)


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bytes(width: int, height: int, bit_depth: int, color_type: int, rows: list[bytes],
              extra_chunks: list[tuple[bytes, bytes]] = ()) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    raw = b"".join(b"\x00" + row for row in rows)  # filter type 0 (none) on every row
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
    for kind, data in extra_chunks:
        out += chunk(kind, data)
    return out + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def over_white(value: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    v, a = value.astype(np.int64), alpha.astype(np.int64)
    return ((v * a + 255 * (255 - a) + 127) // 255).astype(np.uint8)


def make_png(args: argparse.Namespace) -> None:
    width, height = 7, 5
    yy, xx = np.mgrid[0:height, 0:width]
    ramp16 = (xx * 9001 + yy * 13007 + 255).astype(np.uint64) % 65536  # uses both bytes
    extra: list[tuple[bytes, bytes]] = []
    if args.kind == "gray16":
        samples = ramp16.astype(">u2")
        rows = [samples[y].tobytes() for y in range(height)]
        data = png_bytes(width, height, 16, 0, rows)
        g = (ramp16 >> 8).astype(np.uint8)
        expected = np.stack([g, g, g], axis=-1)
    elif args.kind in ("rgb16", "rgba16"):
        chans = [ramp16, (ramp16 * 3 + 7) % 65536, (65535 - ramp16)]
        if args.kind == "rgba16":
            chans.append((xx * 10000 + yy * 2500).astype(np.uint64) % 65536)
        samples = np.stack(chans, axis=-1).astype(">u2")
        rows = [samples[y].tobytes() for y in range(height)]
        data = png_bytes(width, height, 16, 2 if args.kind == "rgb16" else 6, rows)
        rgb8 = np.stack([(c >> 8).astype(np.uint8) for c in chans[:3]], axis=-1)
        if args.kind == "rgba16":
            a8 = (chans[3] >> 8).astype(np.uint8)
            rgb8 = over_white(rgb8, a8[..., None])
        expected = rgb8
    elif args.kind == "palette":
        palette = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30], [200, 100, 50]], np.uint8)
        alpha = np.array([255, 0, 128, 64], np.uint8)  # entry 4 has no tRNS value: opaque
        index = ((xx + 2 * yy) % len(palette)).astype(np.uint8)
        rows = [index[y].tobytes() for y in range(height)]
        extra = [(b"PLTE", palette.tobytes()), (b"tRNS", alpha.tobytes())]
        data = png_bytes(width, height, 8, 3, rows, extra)
        full_alpha = np.concatenate([alpha, np.full(len(palette) - len(alpha), 255, np.uint8)])
        expected = over_white(palette[index], full_alpha[index][..., None])
    elif args.kind == "gray_trns":
        gray = ((xx * 40 + yy * 7) % 256).astype(np.uint8)
        key = int(gray[1, 2])
        rows = [gray[y].tobytes() for y in range(height)]
        data = png_bytes(width, height, 8, 0, rows, [(b"tRNS", struct.pack(">H", key))])
        g = np.where(gray == key, 255, gray).astype(np.uint8)  # the key colour is transparent: white
        expected = np.stack([g, g, g], axis=-1)
    else:
        sys.exit(f"unknown png kind {args.kind}")
    with open(args.out_png, "wb") as f:
        f.write(data)
    expected.astype(np.uint8).tofile(args.out_rgb)
    print(width, height)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("preprocess")
    p.add_argument("rgb_file")
    p.add_argument("width", type=int)
    p.add_argument("height", type=int)
    p.add_argument("size", type=int)
    p.add_argument("out_file")
    p.add_argument("--mean", required=True)
    p.add_argument("--std", required=True)
    p.set_defaults(func=preprocess)
    q = sub.add_parser("png")
    q.add_argument("kind")
    q.add_argument("out_png")
    q.add_argument("out_rgb")
    q.set_defaults(func=make_png)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
