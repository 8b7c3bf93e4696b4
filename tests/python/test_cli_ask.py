"""`musespark ask`: live progress, answer, vote and summary; --json prints the whole trace."""

import json
import subprocess

import pytest

from conftest import BIN, SMALLEST_QWEN3


@pytest.fixture(scope="module")
def model(tiny_model):
    return tiny_model("thinker", *SMALLEST_QWEN3, "--seed", 3, "--open-think")


def ask(model, *args, check=True):
    p = subprocess.run([BIN, "ask", "--model", model, *map(str, args)], capture_output=True)
    if check and p.returncode != 0:
        raise AssertionError(p.stderr.decode(errors="replace"))
    return p


def test_json_prints_the_whole_trace(model):
    p = ask(model, "--mode", "thinking", "--agents", 3, "--max-thinking-tokens", 8, "--max-answer-tokens", 4,
            "--seed", 5, "--no-early-stop", "--token-confidence", "--json", "What is 2+2?")
    t = json.loads(p.stdout)
    assert t["schema_version"] == 1
    assert t["mode_used"] == "thinking"
    assert t["request"]["question"] == "What is 2+2?"
    assert t["request"]["agents"] == 3
    assert [a["id"] for a in t["agents"]] == [0, 1, 2]
    for a in t["agents"]:
        assert a["budget_closed"] is True
        assert a["stop_reason"] in ("eos", "budget")
        assert len(a["token_confidence"]) == a["confidence"]["tokens"]
    assert sum(v["votes"] for v in t["votes"]) == sum(1 for a in t["agents"] if a["normalized_answer"])
    assert t["usage"]["generated_tokens"] == sum(a["thinking_tokens"] + a["answer_tokens"] for a in t["agents"])
    # The same seed gives the same trace (timings aside).
    again = json.loads(ask(model, "--mode", "thinking", "--agents", 3, "--max-thinking-tokens", 8,
                           "--max-answer-tokens", 4, "--seed", 5, "--no-early-stop", "--token-confidence",
                           "--json", "What is 2+2?").stdout)
    t.pop("usage"), again.pop("usage")
    assert t == again


def test_text_output_shows_progress_answer_vote_and_summary(model):
    p = ask(model, "--mode", "thinking", "--agents", 2, "--max-thinking-tokens", 6, "--max-answer-tokens", 4,
            "--no-early-stop", "hello")
    out, err = p.stdout.decode(), p.stderr.decode()
    # Not a terminal: one progress line per agent as it finishes.
    assert err.count("agent ") == 2
    assert "tok" in err and "conf" in err
    assert "vote (thinking, 2 agents):" in out
    assert "2 agents (" in out and "tokens generated" in out


def test_auto_reports_its_escalations(model):
    p = ask(model, "--mode", "auto", "--effort", "minimal", "--agents", 2, "--refine-agents", 2,
            "--max-thinking-tokens", 4, "--max-answer-tokens", 3, "--json", "hi")
    t = json.loads(p.stdout)
    assert t["request"]["mode"] == "auto"
    # A random model is never confident: Instant escalates.
    assert t["escalations"][0]["from"] == "instant"
    assert t["escalations"][0]["reason"] == "low_confidence"
    assert t["agents"][0]["role"] == "instant"


def test_bad_arguments_are_refused(model, tmp_path):
    p = ask(model, "--mode", "pondering", "hi", check=False)
    assert p.returncode != 0 and b"mode" in p.stderr
    p = subprocess.run([BIN, "ask", "--model", str(tmp_path / "none"), "hi"], capture_output=True)
    assert p.returncode == 1 and p.stderr.startswith(b"error: ")
    p = ask(model, "--max-context", 16, "--mode", "thinking", "a long question " * 20, check=False)
    assert p.returncode == 1 and b"context" in p.stderr
