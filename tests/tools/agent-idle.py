#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Idle figures of p11enrolld with many tracked credentials.

  agent-idle.py fill DIR N
      writes N INSTALLED credential records into DIR/credentials (the
      journal format of agent/journal.c: a 366-day certificate issued an
      hour ago, so nothing is due for months); object bytes are random, of
      the sizes of a P-256 enrollment (the agent only schedules them)
  agent-idle.py run AGENT SECONDS
      starts AGENT (with the caller's XDG_* environment), times the start
      until a GetInfo answer (after the journal is read and the first
      schedule done), then watches it idle for SECONDS: VmRSS, VmHWM and
      the context switches from /proc/PID/status, wake-ups from
      /proc/PID/schedstat; prints one "key value" a line and stops it
  agent-idle.py rest AGENT SECONDS
      the same once the agent rests (its configuration must have a short
      [agent] rest-after): waits until it is p11enrolld-rest, watches it
      for SECONDS, then times 5 wake-ups by a GetInfo call (connect to
      answer; each after it rested again): wake_ms is their median
"""
import base64, json, os, secrets, signal, socket, subprocess, sys, time


def fill(d, n):
    cd = os.path.join(d, "credentials")
    os.makedirs(cd, mode=0o700, exist_ok=True)
    now = int(time.time())
    b = lambda k: base64.b64encode(secrets.token_bytes(k)).decode()
    for i in range(n):
        name = "c-%016x" % i
        rec = {
            "p11enroll_credential": 1, "name": name, "service": "bank",
            "state": "INSTALLED",
            "token": {"uri": "pkcs11:model=SoftHSM%20v2;manufacturer=SoftHSM%20project;serial=0123456789abcdef;token=p11e-idle",
                      "serial": "0123456789abcdef", "label": "p11e-idle"},
            "key": {"type": "ec-p256", "id": secrets.token_hex(20), "spki": b(91)},
            "contract_id": "C0001", "user_id": "U%05d" % i,
            "csr": b(420), "certificate": b(640), "chain": [b(560)],
            "subject": "CN=User %05d,O=Bank" % i, "serial": secrets.token_hex(16).upper(),
            "not_before": now - 3600, "not_after": now - 3600 + 366 * 86400,
            "created": now - 3600, "updated": now - 3600,
            "last_error": {"name": None, "message": ""},
        }
        p = os.path.join(cd, name + ".json")
        with open(p, "w") as f:
            json.dump(rec, f, indent=2, sort_keys=True)
        os.chmod(p, 0o600)


def status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.split()[0] if v.split() else ""
    with open("/proc/%d/schedstat" % pid) as f:
        out["schedstat_runs"] = f.read().split()[2]
    return out


def call(sock_path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock_path)
    s.sendall(b'{"method":"GetInfo"}\0')
    buf = b""
    while not buf.endswith(b"\0"):
        chunk = s.recv(65536)
        if not chunk:
            raise OSError("closed")
        buf += chunk
    s.close()
    return buf


def comm(pid):
    with open("/proc/%d/comm" % pid) as f:
        return f.read().strip()


def wait_rest(pid):
    end = time.monotonic() + 60
    while comm(pid) != "p11enrolld-rest":
        if time.monotonic() > end:
            print("error the agent did not rest", flush=True)
            sys.exit(1)
        time.sleep(0.05)


def run(agent, seconds, rest=False):
    sock = os.path.join(os.environ["XDG_RUNTIME_DIR"], "p11enroll", "agent.sock")
    t0 = time.monotonic()
    p = subprocess.Popen([agent], stderr=open(os.devnull, "w"))
    while True:
        try:
            call(sock)
            break
        except OSError:
            if p.poll() is not None or time.monotonic() - t0 > 60:
                print("error agent did not start", flush=True)
                sys.exit(1)
            time.sleep(0.0005)
    t1 = time.monotonic()
    try:
        time.sleep(1)  # the reply and the connection's end settle
        if rest:
            wait_rest(p.pid)
            time.sleep(0.5)
        a = status(p.pid)
        time.sleep(seconds)
        b = status(p.pid)
        print("startup_ms %.1f" % ((t1 - t0) * 1000))
        print("rss_kib %s" % b["VmRSS"])
        print("hwm_kib %s" % b["VmHWM"])
        print("rss_anon_kib %s" % b["RssAnon"])
        for k in ("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches",
                  "schedstat_runs"):
            print("%s %d" % (k, int(b[k]) - int(a[k])))
        if rest:
            wake = []
            for _ in range(5):
                wait_rest(p.pid)
                t = time.monotonic()
                call(sock)
                wake.append((time.monotonic() - t) * 1000)
            print("wake_ms %.1f" % sorted(wake)[2])
        sys.stdout.flush()
    finally:
        # the agent never outlives the measure
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=10)

if __name__ == "__main__":
    if sys.argv[1] == "fill":
        fill(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1] == "run":
        run(sys.argv[2], float(sys.argv[3]))
    elif sys.argv[1] == "rest":
        run(sys.argv[2], float(sys.argv[3]), rest=True)
    else:
        sys.exit("usage: agent-idle.py fill DIR N | run|rest AGENT SECONDS")
