#!/usr/bin/env python3
"""Runs one example host and checks what it prints (used by ctest).

    run_example.py --name NAME [--out-dir DIR] [--agents N] [--timeout S] [--skip-code K] -- COMMAND...
    run_example.py --make-image PATH
    run_example.py --agree DIR NAME...

The host must exit 0 and print exactly

    answer: <the answer>
    vote: <answer> (<votes> votes, <share>%)      one line or more
    agents: <N>

and the vote must add up (shares to 100%, votes to at most N agents). With
--out-dir the output is kept as DIR/NAME.txt, and --agree then checks that
every host printed the same thing (same model, image, question and seed).
A missing tool (cargo, node, valgrind, python3) is a failure, not a skip.
With --skip-code K, a command that exits K is skipped (its message is shown
and K is returned: ctest's SKIP_RETURN_CODE), as tests/tools/memcheck.py
does where valgrind cannot run on this CPU.
"""
import argparse
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib

LINE_ANSWER = re.compile(r"answer: (.*)")
LINE_VOTE = re.compile(r"vote: (.*) \((\d+) votes, (\d+(?:\.\d+)?)%\)")
LINE_AGENTS = re.compile(r"agents: (\d+)")


def fail(name: str, message: str, out: str = "", err: str = "") -> int:
    print(f"FAIL {name}: {message}", file=sys.stderr)
    if out:
        print(f"--- stdout ---\n{out}", file=sys.stderr)
    if err:
        print(f"--- stderr ---\n{err}", file=sys.stderr)
    return 1


def check_output(out: str, agents_expected: int | None) -> str | None:
    """Returns what is wrong with `out`, or None."""
    if not out.endswith("\n"):
        return "output does not end with a newline"
    lines = out[:-1].split("\n")
    if len(lines) < 3:
        return f"expected at least 3 lines, got {len(lines)}"
    if not LINE_ANSWER.fullmatch(lines[0]):
        return f"line 1 is not 'answer: ...': {lines[0]!r}"
    m = LINE_AGENTS.fullmatch(lines[-1])
    if not m:
        return f"last line is not 'agents: N': {lines[-1]!r}"
    agents = int(m.group(1))
    if agents_expected is not None and agents != agents_expected:
        return f"agents: {agents}, expected {agents_expected}"
    votes, share = 0, 0.0
    for line in lines[1:-1]:
        v = LINE_VOTE.fullmatch(line)
        if not v:
            return f"not a vote line 'vote: ANSWER (N votes, P%)': {line!r}"
        if int(v.group(2)) < 1:
            return f"a vote row with no votes: {line!r}"
        votes += int(v.group(2))
        share += float(v.group(3))
    if votes > agents:
        return f"{votes} votes from {agents} agents"
    if abs(share - 100.0) > 0.1 * (len(lines) - 2) + 1e-9:
        return f"vote shares add up to {share:.1f}%, not 100%"
    return None


def run(args: argparse.Namespace) -> int:
    name, command = args.name, args.command
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        return fail(name, "no command given")
    tool = command[0]
    if os.sep not in tool and shutil.which(tool) is None:
        return fail(name, f"'{tool}' is not installed (or not on PATH); scripts/setup installs what the examples need")
    if os.sep in tool and not os.access(tool, os.X_OK):
        return fail(name, f"{tool} is missing or not executable (build the project first)")
    if args.out_dir:
        os.makedirs(args.out_dir, exist_ok=True)
        kept = os.path.join(args.out_dir, f"{name}.txt")
        if os.path.exists(kept):
            os.remove(kept)
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return fail(name, f"timed out after {args.timeout} s: {' '.join(command)}")
    except OSError as e:
        return fail(name, f"cannot run {' '.join(command)}: {e}")
    if args.skip_code is not None and proc.returncode == args.skip_code:
        sys.stdout.write(proc.stdout)
        sys.stdout.write(proc.stderr)
        print(f"SKIP {name}")
        return args.skip_code
    if proc.returncode != 0:
        return fail(name, f"exit status {proc.returncode}", proc.stdout, proc.stderr)
    problem = check_output(proc.stdout, args.agents)
    if problem:
        return fail(name, problem, proc.stdout, proc.stderr)
    if args.out_dir:
        with open(kept, "w", encoding="utf-8") as f:
            f.write(proc.stdout)
    sys.stdout.write(proc.stdout)
    print(f"PASS {name}")
    return 0


def agree(out_dir: str, names: list[str]) -> int:
    outputs = {}
    for name in names:
        path = os.path.join(out_dir, f"{name}.txt")
        if not os.path.exists(path):
            return fail("agree", f"no output from {name} ({path}); did its test pass?")
        with open(path, encoding="utf-8") as f:
            outputs[name] = f.read()
    first = names[0]
    for name in names[1:]:
        if outputs[name] != outputs[first]:
            return fail("agree", f"{name} printed something else than {first}",
                        f"[{first}]\n{outputs[first]}[{name}]\n{outputs[name]}")
    sys.stdout.write(outputs[first])
    print(f"PASS agree: {', '.join(names)} printed the same")
    return 0


def png_rgb(width: int, height: int, pixel) -> bytes:
    """An 8-bit RGB PNG; pixel(x, y) gives (r, g, b)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = b"".join(b"\x00" + b"".join(bytes(pixel(x, y)) for x in range(width)) for y in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9))
            + chunk(b"IEND", b""))


def make_image(path: str) -> int:
    """A 48x32 picture: a red square on a white background."""
    def pixel(x: int, y: int):
        return (220, 30, 30) if 8 <= x < 24 and 8 <= y < 24 else (255, 255, 255)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(png_rgb(48, 32, pixel))
    os.replace(tmp, path)
    print(f"wrote {path}")
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", default="example")
    p.add_argument("--out-dir")
    p.add_argument("--agents", type=int, default=None, help="the number of agents the host must report")
    p.add_argument("--timeout", type=float, default=60)
    p.add_argument("--skip-code", type=int, default=None, help="the command's exit status that means 'skipped'")
    p.add_argument("--make-image", metavar="PATH")
    p.add_argument("--agree", metavar="DIR")
    p.add_argument("command", nargs=argparse.REMAINDER)
    args = p.parse_args()
    if args.make_image:
        return make_image(args.make_image)
    if args.agree:
        return agree(args.agree, [n for n in args.command if n != "--"])
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
