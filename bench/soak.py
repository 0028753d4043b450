#!/usr/bin/env python3
"""Mixed traffic for bench/soak.sh, and the sampler of the processes under it.

  soak.py serve ADDR TCPPORT UDPPORT READY     TCP echo and UDP echo on ADDR
  soak.py dns ADDR PORT READY                  a resolver: every A query is answered 192.0.2.77
  soak.py load HOST TCPPORT UDPPORT DNS SECONDS OUT
        until SECONDS have passed, at once: bulk (4 MiB each way per connection, SHA-256
        checked, one after the other), short connections (8 clients: 512 bytes each way, then
        close), UDP request/response (4 clients, 1200-byte datagrams, 1 s for the answer) and,
        unless DNS is "-", DNS queries to DNS:53 (2 clients, 2 s for the answer); counts of
        what worked and what did not go to OUT as JSON
  soak.py sample MARK SECONDS INTERVAL OUT
        every INTERVAL seconds, RSS and open descriptors of every nsnet, rootlesskit and
        slirp4netns process whose environment holds NSNET_BENCH_RUN=MARK, summed per side
        ("nsnet", "rootlesskit+slirp4netns"), one CSV line per side and sample
  soak.py report OUT WARMUP                    the samples after WARMUP seconds: first, last,
        maximum and growth per side
Everything stays on loopback or inside the benchmark's namespaces.
"""

import asyncio
import hashlib
import json
import os
import random
import socket
import struct
import sys
import time


async def serve(addr, tport, uport, ready):
    async def echo(r, w):
        try:
            while True:
                d = await r.read(65536)
                if not d:
                    break
                w.write(d)
                await w.drain()
            w.close()
            await w.wait_closed()
        except (ConnectionError, OSError):
            pass

    class Udp(asyncio.DatagramProtocol):
        def connection_made(self, t):
            self.t = t

        def datagram_received(self, d, a):
            self.t.sendto(d, a)

    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(Udp, local_addr=(addr, uport))
    srv = await asyncio.start_server(echo, addr, tport, backlog=1024, reuse_address=True)
    open(ready, "w").close()
    async with srv:
        await srv.serve_forever()


async def dns(addr, port, ready):
    class Dns(asyncio.DatagramProtocol):
        def connection_made(self, t):
            self.t = t

        def datagram_received(self, q, a):
            if len(q) < 12:
                return
            end = 12
            while end < len(q) and q[end] != 0:
                end += q[end] + 1
            question = q[12 : end + 5]
            head = q[:2] + b"\x81\x80" + b"\x00\x01\x00\x01\x00\x00\x00\x00"
            answer = b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04" + bytes([192, 0, 2, 77])
            self.t.sendto(head + question + answer, a)

    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(Dns, local_addr=(addr, port))
    open(ready, "w").close()
    await asyncio.Event().wait()


def query(name):
    qid = random.randrange(65536)
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split("."))
    return qid, struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + labels + b"\x00\x00\x01\x00\x01"


async def load(host, tport, uport, dns_addr, seconds, out):
    end = time.monotonic() + seconds
    counts = {k: 0 for k in ("bulk_ok", "bulk_bad", "short_ok", "short_bad", "udp_ok", "udp_lost",
                             "dns_ok", "dns_bad")}
    loop = asyncio.get_running_loop()

    async def exchange(data, timeout):
        r, w = await asyncio.wait_for(asyncio.open_connection(host, tport), timeout)
        try:
            async def send():
                w.write(data)
                await w.drain()
                w.write_eof()

            sender = asyncio.create_task(send())
            got = await asyncio.wait_for(r.readexactly(len(data)), timeout)
            await sender
            return got
        finally:
            w.close()

    async def bulk():
        i = 0
        while time.monotonic() < end:
            i += 1
            data = hashlib.sha256(b"soak-%d" % i).digest() * (4 * 1024 * 1024 // 32)
            try:
                got = await exchange(data, 60)
                ok = hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
                why = "corrupted"
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
                ok, why = False, type(e).__name__
            counts["bulk_ok" if ok else "bulk_bad"] += 1
            if not ok:
                counts["bulk_bad_" + why] = counts.get("bulk_bad_" + why, 0) + 1
                await asyncio.sleep(0.05)

    async def short():
        while time.monotonic() < end:
            data = os.urandom(512)
            try:
                ok = await exchange(data, 10) == data
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
                ok = False
                await asyncio.sleep(0.05)
            counts["short_ok" if ok else "short_bad"] += 1

    async def datagrams(addr, port, make, good, ok_key, bad_key, timeout):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setblocking(False)
        s.connect((addr, port))
        while time.monotonic() < end:
            want, payload = make()
            try:
                await loop.sock_sendall(s, payload)
                while True:
                    got = await asyncio.wait_for(loop.sock_recv(s, 65536), timeout)
                    if good(want, got):
                        break
                counts[ok_key] += 1
            except (OSError, asyncio.TimeoutError):
                counts[bad_key] += 1
        s.close()

    def udp_make():
        d = os.urandom(1200)
        return d, d

    def dns_make():
        qid, q = query("n%d.soak.test" % random.randrange(10**6))
        return qid, q

    def dns_good(qid, got):
        return len(got) >= 12 and struct.unpack(">H", got[:2])[0] == qid and got[-4:] == bytes([192, 0, 2, 77])

    tasks = [bulk()] + [short() for _ in range(8)]
    tasks += [datagrams(host, uport, udp_make, lambda w, g: w == g, "udp_ok", "udp_lost", 1)
              for _ in range(4)]
    if dns_addr != "-":
        tasks += [datagrams(dns_addr, 53, dns_make, dns_good, "dns_ok", "dns_bad", 2)
                  for _ in range(2)]
    await asyncio.gather(*tasks)
    with open(out, "w") as f:
        json.dump(counts, f)


SIDES = {"nsnet": "nsnet", "rootlesskit": "rootlesskit+slirp4netns",
         "slirp4netns": "rootlesskit+slirp4netns"}


def side_of(pid, mark):
    try:
        env = open("/proc/%s/environ" % pid, "rb").read().split(b"\0")
        if ("NSNET_BENCH_RUN=%s" % mark).encode() not in env:
            return None
        exe = os.path.basename(os.readlink("/proc/%s/exe" % pid))
    except OSError:
        return None
    return SIDES.get(exe)


def sample(mark, seconds, interval, out):
    t0 = time.monotonic()
    with open(out, "w") as f:
        f.write("t,side,processes,rss_kib,fds\n")
        while time.monotonic() - t0 < seconds:
            sums = {}
            for pid in filter(str.isdigit, os.listdir("/proc")):
                side = side_of(pid, mark)
                if side is None:
                    continue
                try:
                    rss = next(int(l.split()[1]) for l in open("/proc/%s/status" % pid)
                               if l.startswith("VmRSS:"))
                    fds = len(os.listdir("/proc/%s/fd" % pid))
                except (OSError, StopIteration):
                    continue
                p, r, d = sums.get(side, (0, 0, 0))
                sums[side] = (p + 1, r + rss, d + fds)
            t = int(time.monotonic() - t0)
            for side, (p, r, d) in sorted(sums.items()):
                f.write("%d,%s,%d,%d,%d\n" % (t, side, p, r, d))
            f.flush()
            time.sleep(interval)


def report(out, warmup):
    rows = {}
    for line in open(out).read().splitlines()[1:]:
        t, side, p, r, d = line.split(",")
        if int(t) >= warmup:
            rows.setdefault(side, []).append((int(t), int(p), int(r), int(d)))
    for side, rs in sorted(rows.items()):
        (t1, p1, r1, d1), (t2, p2, r2, d2) = rs[0], rs[-1]
        print("%-24s t=%d..%d s  processes %d..%d  RSS %d -> %d KiB (max %d, %+d)  fds %d -> %d (max %d, %+d)"
              % (side, t1, t2, p1, p2, r1, r2, max(x[2] for x in rs), r2 - r1, d1, d2,
                 max(x[3] for x in rs), d2 - d1))


def main():
    a = sys.argv[1:]
    if a[0] == "serve":
        asyncio.run(serve(a[1], int(a[2]), int(a[3]), a[4]))
    elif a[0] == "dns":
        asyncio.run(dns(a[1], int(a[2]), a[3]))
    elif a[0] == "load":
        asyncio.run(load(a[1], int(a[2]), int(a[3]), a[4], float(a[5]), a[6]))
    elif a[0] == "sample":
        sample(a[1], float(a[2]), float(a[3]), a[4])
    elif a[0] == "report":
        report(a[1], int(a[2]))
    else:
        sys.exit("usage: see the top of this file")


if __name__ == "__main__":
    main()
