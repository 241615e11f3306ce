#!/usr/bin/env python3
"""One connection, one NOTIFY at a time with a pause after each ACK: the light, steady load
under which a spinning executor would spin for nothing before every sleep. Prints the rate and
the agent's CPU (utime + stime from /proc, 10 ms ticks: run for seconds, not milliseconds).

    scripts/paced-load.py PORT AGENT_PID [PAUSE_S=0.001] [SECONDS=5]

Start the agent first, e.g. `taskset -c 1 target/release/spoa -n 1 -p 12399 --spin-us 50`, and
run this on another CPU (`taskset -c 0`). Frames are the captured HAProxy vectors of
spop-core/tests/vectors (HAPROXY-HELLO, then the `check-client-ip` NOTIFY for 127.0.0.1).
"""
import os
import socket
import sys
import time

VECTORS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "spop-core", "tests", "vectors")


def vector(name):
    with open(os.path.join(VECTORS, name + ".hex")) as f:
        return bytes.fromhex(f.read().split()[0])


def read_exact(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            sys.exit("the agent closed the connection")
        data += chunk
    return data


def read_frame(s):
    return read_exact(s, int.from_bytes(read_exact(s, 4), "big"))


def cpu_ticks(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def main():
    port, pid = int(sys.argv[1]), int(sys.argv[2])
    pause = float(sys.argv[3]) if len(sys.argv) > 3 else 0.001
    seconds = float(sys.argv[4]) if len(sys.argv) > 4 else 5.0
    hello, notify = vector("haproxy-hello"), vector("notify-ipv4")
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(hello)
    read_frame(s)
    before, start, acks = cpu_ticks(pid), time.monotonic(), 0
    while time.monotonic() - start < seconds:
        s.sendall(notify)
        if read_frame(s)[0] != 103:  # ACK
            sys.exit("not an ACK")
        acks += 1
        time.sleep(pause)
    if acks == 0:
        sys.exit("no ACK within the time given")
    elapsed, used = time.monotonic() - start, (cpu_ticks(pid) - before) / os.sysconf("SC_CLK_TCK")
    print(f"{acks} ACKs in {elapsed:.1f} s ({acks / elapsed:.0f}/s): agent CPU {100 * used / elapsed:.1f} % "
          f"of a CPU, {used / acks * 1e6:.1f} µs per ACK")


if __name__ == "__main__":
    main()
