#!/usr/bin/env python3
"""Request-response latency for bench/latency.sh.

  rr.py serve ADDR PORT               answer every request of REQ bytes with RESP bytes
                                      (sizes sent by the client in a 8-byte hello)
  rr.py run HOST PORT -c CLIENTS -n ROUNDS -q REQ -p RESP
                                      CLIENTS processes, ROUNDS round trips in all, each timed;
                                      prints "median_us p99_us ok" over every round trip.
Only loopback and addresses inside the bench's own namespaces are used.
"""
import argparse, os, selectors, socket, statistics, struct, sys, time


def serve(addr, port):
    sel = selectors.DefaultSelector()
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((addr, port))
    ls.listen(1024)
    ls.setblocking(False)
    sel.register(ls, selectors.EVENT_READ, None)
    print("ready", flush=True)
    state = {}
    while True:
        for key, _ in sel.select():
            s = key.fileobj
            if s is ls:
                try:
                    c, _ = ls.accept()
                except BlockingIOError:
                    continue
                c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                c.setblocking(False)
                sel.register(c, selectors.EVENT_READ, None)
                state[c] = [b"", None]
                continue
            try:
                d = s.recv(65536)
            except (BlockingIOError, ConnectionError):
                d = b"" if not isinstance(sys.exc_info()[1], BlockingIOError) else None
            if d is None:
                continue
            if not d:
                sel.unregister(s)
                s.close()
                state.pop(s, None)
                continue
            st = state[s]
            st[0] += d
            if st[1] is None and len(st[0]) >= 8:
                st[1] = struct.unpack("!II", st[0][:8])
                st[0] = st[0][8:]
            if st[1]:
                req, resp = st[1]
                while len(st[0]) >= req:
                    st[0] = st[0][req:]
                    s.setblocking(True)
                    s.sendall(b"r" * resp)
                    s.setblocking(False)


def client(host, port, rounds, req, resp, out):
    s = socket.create_connection((host, port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(struct.pack("!II", req, resp))
    msg = b"q" * req
    lat = []
    for _ in range(rounds):
        t = time.perf_counter_ns()
        s.sendall(msg)
        got = 0
        while got < resp:
            d = s.recv(resp - got)
            if not d:
                raise SystemExit(1)
            got += len(d)
        lat.append(time.perf_counter_ns() - t)
    os.write(out, b"".join(struct.pack("!Q", v) for v in lat))


def run(host, port, clients, rounds, req, resp):
    per = rounds // clients
    files = []
    for i in range(clients):
        r, w = os.pipe()
        if os.fork() == 0:
            os.close(r)
            try:
                client(host, port, per, req, resp, w)
            finally:
                os._exit(0)
        os.close(w)
        files.append(r)
    lat = []
    for r in files:
        buf = b""
        while True:
            d = os.read(r, 1 << 20)
            if not d:
                break
            buf += d
        lat += [v[0] for v in struct.iter_unpack("!Q", buf)]
    for _ in files:
        os.wait()
    if not lat:
        print("– – 0")
        return
    lat.sort()
    med = statistics.median(lat) / 1000
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] / 1000
    print(f"{med:.1f} {p99:.1f} {len(lat)}")


def main():
    a = argparse.ArgumentParser()
    a.add_argument("mode", choices=["serve", "run"])
    a.add_argument("host")
    a.add_argument("port", type=int)
    a.add_argument("-c", type=int, default=1)
    a.add_argument("-n", type=int, default=10000)
    a.add_argument("-q", type=int, default=1)
    a.add_argument("-p", type=int, default=1)
    o = a.parse_args()
    if o.mode == "serve":
        serve(o.host, o.port)
    else:
        run(o.host, o.port, o.c, o.n, o.q, o.p)


main()
