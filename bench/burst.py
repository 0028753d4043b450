#!/usr/bin/env python3
"""Connection bursts, every byte checked.

  burst.py serve ADDR PORT READYFILE     echo server (asyncio, backlog 4096): echoes each
                                        connection until EOF, then closes it
  burst.py run HOST PORT N SIZE [TIMEOUT] N connections started at once; each sends SIZE bytes
                                        of its own pseudo-random stream, half-closes, reads the
                                        echo to EOF and compares its SHA-256
  burst.py udp-serve ADDR PORT READYFILE  UDP echo server
  burst.py udp-run HOST PORT N K SIZE    N clients at once (a socket each), each sending K
                                        datagrams of SIZE bytes one after the other, each
                                        answered before the next (2 s each, no retry)

`run` prints one line, `ok=.. reset=.. incomplete=.. corrupt=.. timeout=.. refused=.. secs=..`,
and exits 0 only when every connection was ok. Loopback and own namespaces only.
"""
import asyncio
import hashlib
import os
import sys
import time


async def serve(addr, port, ready):
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

    srv = await asyncio.start_server(echo, addr, port, backlog=4096, reuse_address=True)
    open(ready, "w").close()
    async with srv:
        await srv.serve_forever()


def payload(i, size):
    out = bytearray()
    h = hashlib.sha256(b"burst-%d" % i).digest()
    while len(out) < size:
        h = hashlib.sha256(h).digest()
        out += h * 64
    return bytes(out[:size])


async def one(i, host, port, size, timeout, counts):
    data = payload(i, size)
    try:
        r, w = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except ConnectionRefusedError:
        counts["refused"] += 1
        return
    except (asyncio.TimeoutError, TimeoutError):
        counts["timeout"] += 1
        return
    except (ConnectionError, OSError):
        counts["reset"] += 1
        return
    try:
        async def send():
            w.write(data)
            await w.drain()
            w.write_eof()

        async def recv():
            got = bytearray()
            while True:
                d = await r.read(65536)
                if not d:
                    return bytes(got)
                got += d

        _, got = await asyncio.wait_for(asyncio.gather(send(), recv()), timeout)
        if len(got) < len(data):
            counts["incomplete"] += 1
        elif hashlib.sha256(got).digest() != hashlib.sha256(data).digest():
            counts["corrupt"] += 1
        else:
            counts["ok"] += 1
    except (asyncio.TimeoutError, TimeoutError):
        counts["timeout"] += 1
    except (ConnectionError, OSError):
        counts["reset"] += 1
    finally:
        w.close()


async def run(host, port, n, size, timeout):
    counts = dict.fromkeys(["ok", "reset", "incomplete", "corrupt", "timeout", "refused"], 0)
    t = time.monotonic()
    await asyncio.gather(*(one(i, host, port, size, timeout, counts) for i in range(n)))
    secs = time.monotonic() - t
    print(" ".join(f"{k}={v}" for k, v in counts.items()) + f" secs={secs:.1f}", flush=True)
    return counts["ok"] == n


async def udp_serve(addr, port, ready):
    class Echo(asyncio.DatagramProtocol):
        def connection_made(self, t):
            self.t = t

        def datagram_received(self, d, a):
            self.t.sendto(d, a)

    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(Echo, local_addr=(addr, port))
    open(ready, "w").close()
    await asyncio.Event().wait()


async def udp_run(host, port, n, k, size):
    counts = dict.fromkeys(["ok", "lost", "corrupt"], 0)
    loop = asyncio.get_running_loop()

    class Client(asyncio.DatagramProtocol):
        def __init__(self):
            self.q = asyncio.Queue()

        def datagram_received(self, d, a):
            self.q.put_nowait(d)

    async def one(i):
        t, c = await loop.create_datagram_endpoint(Client, remote_addr=(host, port))
        try:
            for j in range(k):
                d = payload(i * k + j, size)
                t.sendto(d)
                try:
                    got = await asyncio.wait_for(c.q.get(), 2)
                except (asyncio.TimeoutError, TimeoutError):
                    counts["lost"] += 1
                    continue
                counts["ok" if got == d else "corrupt"] += 1
        finally:
            t.close()

    t0 = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(n)))
    secs = time.monotonic() - t0
    print(" ".join(f"{k}={v}" for k, v in counts.items()) + f" secs={secs:.1f}", flush=True)
    return counts["ok"] == n * k


def main():
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if sys.argv[1] == "serve":
        asyncio.run(serve(sys.argv[2], int(sys.argv[3]), sys.argv[4]))
    elif sys.argv[1] == "udp-serve":
        asyncio.run(udp_serve(sys.argv[2], int(sys.argv[3]), sys.argv[4]))
    elif sys.argv[1] == "udp-run":
        a = sys.argv[2:]
        sys.exit(0 if asyncio.run(udp_run(a[0], int(a[1]), int(a[2]), int(a[3]), int(a[4]))) else 1)
    else:
        host, port, n, size = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
        timeout = float(sys.argv[6]) if len(sys.argv) > 6 else 60.0
        sys.exit(0 if asyncio.run(run(host, port, n, size, timeout)) else 1)


if __name__ == "__main__":
    main()
