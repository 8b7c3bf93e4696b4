"""`musespark ask --image F --render out.png`: questions about images, zoom-ins drawn on the picture."""

import json
import subprocess
import zlib

import pytest

from conftest import BIN, SMALLEST_QWEN3  # noqa: E402
import image_reference  # noqa: E402


def png(path, width, height, pixel):
    rows = [bytes(b for x in range(width) for b in pixel(x, y)) for y in range(height)]
    with open(path, "wb") as f:
        f.write(image_reference.png_bytes(width, height, 8, 2, rows))


def read_png_rgb(path):
    """Width, height and RGB rows of a PNG written by stb (8-bit RGB, any filter)."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(data):
        n = int.from_bytes(data[pos:pos + 4], "big")
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            width, height = int.from_bytes(body[:4], "big"), int.from_bytes(body[4:8], "big")
            assert body[8] == 8 and body[9] == 2
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw, stride, rows, prev = zlib.decompress(idat), width * 3, [], bytearray(width * 3)
    for y in range(height):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - 3] if i >= 3 else 0
            b, c = prev[i], prev[i - 3] if i >= 3 else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, rows


@pytest.fixture(scope="module")
def model(tiny_model):
    return tiny_model("seer", *SMALLEST_QWEN3, "--seed", 4, "--open-think", "--vision")


def test_ask_about_an_image_and_render_the_zooms(model, tmp_path):
    picture = str(tmp_path / "in.png")
    png(picture, 64, 48, lambda x, y: (200, 200, 200))
    out = str(tmp_path / "out.png")
    # The prefix makes every agent zoom into the top-left quarter first.
    p = subprocess.run([BIN, "ask", "--model", model, "--image", picture, "--mode", "thinking", "--agents", "2",
                        "--max-thinking-tokens", "30", "--max-answer-tokens", "2", "--max-zooms", "1", "--json",
                        "--prefix", "<zoom>(0,0),(500,500)</zoom>", "--render", out, "What is in the picture?"],
                       capture_output=True)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    t = json.loads(p.stdout)
    assert t["mode_used"] == "thinking"
    zooms = [v for v in t["visual_actions"] if v["kind"] == "zoom"]
    assert len(zooms) >= 2
    assert zooms[0]["box"] == [0, 0, 32, 24] and zooms[0]["applied"] is True
    assert (zooms[0]["crop_width"], zooms[0]["crop_height"]) == (32, 24)
    assert b"visual actions on" in p.stderr
    width, height, rows = read_png_rgb(out)
    assert (width, height) == (64, 48)
    grey = b"\xc8\xc8\xc8"
    assert rows[12][0:3] != grey           # the zoom's left edge is drawn
    assert rows[40][60 * 3:61 * 3] == grey  # far from it, the picture is untouched


def test_bad_images_are_refused_cleanly(model, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    p = subprocess.run([BIN, "ask", "--model", model, "--image", str(broken), "hi"], capture_output=True)
    assert p.returncode == 1
    assert p.stderr.startswith(b"error: ") and b"broken.png" in p.stderr
    p = subprocess.run([BIN, "ask", "--model", model, "--image", str(tmp_path / "missing.png"), "hi"],
                       capture_output=True)
    assert p.returncode != 0 and b"missing.png" in p.stderr
    p = subprocess.run([BIN, "ask", "--model", model, "--render", str(tmp_path / "x.png"), "hi"], capture_output=True)
    assert p.returncode == 1 and b"--render" in p.stderr
