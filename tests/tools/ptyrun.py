#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Runs a command on a pseudo-terminal, as a person at a terminal would.

    ptyrun.py EXPECT -- COMMAND [ARG]...

Waits (at most 15 s) until the terminal shows EXPECT, then types the first
line of this program's standard input followed by Enter, and copies
everything the terminal showed to standard output.  Exits with the
command's exit status (or 124 on time-out)."""

import os
import pty
import select
import sys
import time


def main():
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        sys.stderr.write(__doc__)
        return 2
    expect = sys.argv[1].encode()
    answer = sys.stdin.buffer.readline().rstrip(b"\n")
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(sys.argv[3], sys.argv[3:])
    seen = b""
    typed = False
    deadline = time.monotonic() + 15
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            sys.stdout.buffer.write(seen)
            return 124
        r, _, _ = select.select([fd], [], [], left)
        if not r:
            continue
        try:
            data = os.read(fd, 4096)
        except OSError:
            data = b""
        if not data:
            break
        seen += data
        if not typed and expect in seen:
            # let the program turn echo off before the keys arrive
            time.sleep(0.2)
            os.write(fd, answer + b"\n")
            typed = True
    _, status = os.waitpid(pid, 0)
    sys.stdout.buffer.write(seen)
    return os.waitstatus_to_exitcode(status)


sys.exit(main())
