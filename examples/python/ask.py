#!/usr/bin/env python3
"""musespark from Python: ask a question about an image in Thinking mode and
print the answer and the vote.

    usage: ask.py MODEL_DIR IMAGE_PATH [QUESTION]

Needs the `musespark` package on the path (after a build: PYTHONPATH=build/python).
"""
import sys

DEFAULT_QUESTION = "What colour is the square in this picture?"


def main(argv: list[str]) -> int:
    if len(argv) not in (3, 4):
        print(f"usage: {argv[0]} MODEL_DIR IMAGE_PATH [QUESTION]", file=sys.stderr)
        return 2
    model_dir, image = argv[1], argv[2]
    question = argv[3] if len(argv) > 3 else DEFAULT_QUESTION

    try:
        import musespark
    except ImportError as e:
        print(f"error: cannot import musespark ({e}); set PYTHONPATH to the build's python folder",
              file=sys.stderr)
        return 1

    try:
        engine = musespark.Engine(model_dir)
        result = engine.ask(question, mode="thinking", images=[image], agents=3,
                            max_thinking_tokens=8, max_answer_tokens=4, seed=1)
    except Exception as e:  # the binding raises musespark's errors with the C ABI's message
        print(f"error: {e}", file=sys.stderr)
        return 1

    print(f"answer: {result.answer}")
    for vote in result.trace.votes:
        print(f"vote: {vote.answer} ({vote.votes} votes, {vote.share * 100:.1f}%)")
    print(f"agents: {len(result.trace.agents)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
