#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""A terminal that a person answers prompts on, for a program that is
given the terminal's path (pinentry-tty's OPTION ttyname).

    ptyanswer.py DIR

Opens a pseudo-terminal, writes the path of its terminal side to DIR/tty
and keeps it open.  Each time the terminal shows PROMPT (default "PIN:")
at the end of what it showed since the last answer, reads DIR/rules
(lines TEXT<TAB>ANSWER; the first rule whose TEXT that dialog showed
wins) and types ANSWER followed by Enter; "^D" types Ctrl-D (end of
input: the dialog is cancelled) and "-" types nothing (nobody there).
Appends "TEXT" of the rule used (or "?" for none) to DIR/answered, one
line per prompt, and everything the terminal showed to DIR/screen.  Ends
when DIR/stop exists, or after 600 s."""

import os
import pty
import select
import sys
import time


def rules(path):
    out = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.rstrip("\n")
                if "\t" in line:
                    text, answer = line.split("\t", 1)
                    out.append((text.encode(), answer))
    except FileNotFoundError:
        pass
    return out


def main():
    if len(sys.argv) != 2:
        sys.stderr.write(__doc__)
        return 2
    d = sys.argv[1]
    prompt = os.environ.get("PTYANSWER_PROMPT", "PIN:").encode()
    master, slave = pty.openpty()
    tmp = os.path.join(d, "tty.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(os.ttyname(slave) + "\n")
    os.rename(tmp, os.path.join(d, "tty"))
    shown = b""
    end = time.monotonic() + 600
    while time.monotonic() < end and not os.path.exists(os.path.join(d, "stop")):
        r, _, _ = select.select([master], [], [], 0.2)
        if not r:
            continue
        try:
            data = os.read(master, 4096)
        except OSError:
            time.sleep(0.1)
            continue
        with open(os.path.join(d, "screen"), "ab") as f:
            f.write(data)
        shown += data
        if not shown.rstrip().endswith(prompt):
            continue
        used, answer = "?", "-"
        for text, a in rules(os.path.join(d, "rules")):
            if text in shown:
                used, answer = text.decode(), a
                break
        # let the program turn echo off before the keys arrive
        time.sleep(0.3)
        if answer == "^D":
            os.write(master, b"\x04")
        elif answer != "-":
            os.write(master, answer.encode() + b"\n")
        with open(os.path.join(d, "answered"), "a", encoding="utf-8") as f:
            f.write(used + "\n")
        shown = b""
    os.close(slave)
    os.close(master)
    return 0


sys.exit(main())
