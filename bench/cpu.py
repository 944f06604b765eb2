"""Prints the CPU seconds (user + system) spent so far by the given processes and all their
descendants, finished ones included, as far as the kernel keeps count.

    python3 bench/cpu.py PID...

A process's own time counts, and so does the time of every child it has waited for (a
PostgreSQL postmaster waits for its backends; a shell for its commands). Children still
running are counted one by one. bench/run.sh takes this before and after each run, for the
shell that runs the contenders and both postmasters: the difference is the work the run cost
the whole machine, whichever processes did it, and unlike wall time it does not depend on
what else the machine was doing.
"""

import os
import sys

TICK = os.sysconf("SC_CLK_TCK")


def stat(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    # Fields after the command name in parentheses: state is field 3, ppid 4, utime 14,
    # stime 15, cutime 16, cstime 17.
    rest = text[text.rindex(")") + 2 :].split()
    return int(rest[1]), sum(int(v) for v in rest[11:15])


def main(roots):
    parents = {}
    ticks = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            s = stat(int(name))
            if s:
                parents.setdefault(s[0], []).append(int(name))
                ticks[int(name)] = s[1]
    me = os.getpid()
    total = 0
    seen = set()
    todo = [int(p) for p in roots if p]
    while todo:
        pid = todo.pop()
        if pid in seen or pid == me or pid not in ticks:
            continue
        seen.add(pid)
        total += ticks[pid]
        todo.extend(parents.get(pid, []))
    print(f"{total / TICK:.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
