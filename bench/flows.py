#!/usr/bin/env python3
"""Idle TCP flows for bench/memory.sh.

  flows.py serve ADDR PORT...        accept on each port and hold every connection open
  flows.py hold HOST PORT... -n N -r READY
                                     open N connections spread over the ports, each sending
                                     and receiving one 64-byte exchange (so the network's
                                     buffers for it have been used once), then write READY
                                     (the number held; on a failure, a second line "failed
                                     at I: ERROR", and no more are tried) and hold them until
                                     killed.
Spread over several ports because each (address, port) pair of the server gives a client
address at most its ephemeral range of connections (28,232 by Linux's default): 100,000
flows over 8 ports are 12,500 a port.
Only loopback and addresses inside the bench's own namespaces are ever used.
"""
import argparse, os, resource, selectors, socket, sys, time


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def serve(addr, ports):
    sel = selectors.DefaultSelector()
    for p in ports:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, p))
        s.listen(4096)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, "listen")
    print("ready", flush=True)
    while True:
        for key, _ in sel.select():
            if key.data == "listen":
                try:
                    c, _ = key.fileobj.accept()
                except BlockingIOError:
                    continue
                c.setblocking(False)
                sel.register(c, selectors.EVENT_READ, "conn")
            else:
                try:
                    d = key.fileobj.recv(4096)
                except BlockingIOError:
                    continue
                except ConnectionError:
                    d = b""
                if d:
                    key.fileobj.send(d)
                else:
                    sel.unregister(key.fileobj)
                    key.fileobj.close()


def hold(host, ports, n, ready):
    socks, ok, failed = [], 0, ""
    for i in range(n):
        try:
            s = socket.create_connection((host, ports[i % len(ports)]), timeout=10)
            s.sendall(b"x" * 64)
            got = b""
            while len(got) < 64:
                d = s.recv(64 - len(got))
                if not d:
                    break
                got += d
        except OSError as e:
            failed = f"failed at {i + 1}: {e}\n"
            break
        if len(got) < 64:
            failed = f"failed at {i + 1}: closed after {len(got)} bytes\n"
            break
        ok += 1
        socks.append(s)
    with open(ready, "w") as f:
        f.write(f"{ok}\n{failed}")
    while True:
        time.sleep(3600)


def main():
    raise_nofile()
    a = argparse.ArgumentParser()
    a.add_argument("mode", choices=["serve", "hold"])
    a.add_argument("host")
    a.add_argument("ports", type=int, nargs="+")
    a.add_argument("-n", type=int, default=0)
    a.add_argument("-r", default="")
    o = a.parse_args()
    if o.mode == "serve":
        serve(o.host, o.ports)
    else:
        hold(o.host, o.ports, o.n, o.r)


main()
