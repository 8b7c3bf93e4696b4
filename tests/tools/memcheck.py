#!/usr/bin/env python3
"""Runs a program under valgrind's memcheck, or says why it cannot (used by ctest).

    memcheck.py --probe PROBE [--suppressions FILE] -- PROGRAM [ARGS...]

First runs PROBE (a program that loads the same libraries) under valgrind.
If valgrind cannot execute them on this CPU -- valgrind 3.19 stops with
"unhandled instruction bytes" at `rdtscp` in libhwy, which libtorch loads,
on AMD Zen 4 -- it prints why, names the sanitizer build that checks memory
on such machines, and exits with SKIP_CODE (77, ctest's SKIP_RETURN_CODE).
Otherwise it runs PROGRAM under valgrind (errors and definite leaks are
failures), passing its output through, and exits with its status.
"""
import argparse
import os
import re
import shutil
import signal
import subprocess
import sys

SKIP_CODE = 77
VALGRIND_FLAGS = ["--error-exitcode=1", "--leak-check=full", "--errors-for-leak-kinds=definite"]
SUPPRESSIONS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "valgrind.supp")
# What valgrind prints when it meets an instruction it cannot translate.
UNHANDLED = re.compile(r"unhandled instruction bytes|Unrecognised instruction|valgrind: Unrecognised")


def valgrind_cannot_run(proc: subprocess.CompletedProcess) -> str | None:
    """Why valgrind could not run the probe's libraries, or None if it could."""
    output = proc.stderr
    if not UNHANDLED.search(output) and proc.returncode != -signal.SIGILL:
        return None
    lines = [line for line in output.splitlines()
             if "unhandled instruction" in line or "at 0x" in line or "SIGILL" in line]
    return "\n".join(lines[:4]) or f"the probe ended with status {proc.returncode}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--probe", required=True, help="a program that loads the same libraries")
    p.add_argument("--suppressions", default=SUPPRESSIONS)
    p.add_argument("command", nargs=argparse.REMAINDER)
    args = p.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        p.error("no program given")
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        print("memcheck: valgrind is not installed; scripts/setup installs it", file=sys.stderr)
        return 1
    version = subprocess.run([valgrind, "--version"], capture_output=True, text=True).stdout.strip()
    base = [valgrind, *VALGRIND_FLAGS, f"--suppressions={args.suppressions}"]

    probe = subprocess.run([*base, args.probe], capture_output=True, text=True, timeout=300)
    why = valgrind_cannot_run(probe)
    if why is not None:
        print(f"memcheck: SKIPPED: {version} cannot execute the libraries that libmusespark loads on this CPU:\n"
              f"{why}\n"
              "memcheck: memory is checked on this machine by the sanitizer build instead "
              "(ASan + UBSan + LeakSanitizer: cmake --workflow --preset sanitize)", file=sys.stderr)
        return SKIP_CODE
    if probe.returncode != 0:
        print(f"memcheck: the probe failed under {version} (status {probe.returncode}):\n{probe.stderr}",
              file=sys.stderr)
        return 1
    return subprocess.run([*base, *command]).returncode


if __name__ == "__main__":
    sys.exit(main())
