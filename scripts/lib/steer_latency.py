#!/usr/bin/env python3
"""Time from a changed user count (POST /swarm) to the first new TCP connection.

A minimal MQTT 3.1.1 listener stands in for the broker: it accepts, answers each CONNECT
with CONNACK 0 and discards what follows (the generator publishes at QoS 0). The same
process posts the change and timestamps the accept, so both ends read one monotonic clock.
Usage: steer_latency.py MQBLAST_BINARY ROUNDS  (prints one latency in ms per round)
"""
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request

accepted = []  # monotonic accept times
lock = threading.Condition()


def serve(conn):
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        conn.recv(65536)  # the CONNECT (small, one segment on loopback)
        conn.sendall(b"\x20\x02\x00\x00")
        while conn.recv(65536):
            pass
    except OSError:
        pass


def listen(sock):
    while True:
        conn, _ = sock.accept()
        with lock:
            accepted.append(time.monotonic())
            lock.notify_all()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(count, timeout_s=30):
    deadline = time.monotonic() + timeout_s
    with lock:
        while len(accepted) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise SystemExit(f"only {len(accepted)} of {count} connections")
            lock.wait(left)
        return accepted[count - 1]


def main():
    binary, rounds = sys.argv[1], int(sys.argv[2])
    broker = socket.socket()
    broker.bind(("127.0.0.1", 0))
    broker.listen(1024)
    threading.Thread(target=listen, args=(broker,), daemon=True).start()
    web_port = free_port()
    host = f"127.0.0.1:{broker.getsockname()[1]}"
    args = [binary, "--web", "--web-port", str(web_port), "--autostart", "-H", host,
            "-u", "5", "-r", "100", "--qos", "0", "--interval", "1s", "--only-summary",
            "--keep-alive", "0", "-t", "10m"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(5)
        users = 5
        for _ in range(rounds):
            time.sleep(0.3)
            users += 1
            body = f"user_count={users}&spawn_rate=100".encode()
            request = urllib.request.Request(f"http://127.0.0.1:{web_port}/swarm", data=body)
            posted = time.monotonic()
            reply = json.load(urllib.request.urlopen(request, timeout=10))
            assert reply["success"], reply
            first = wait_for(users)
            print(f"{(first - posted) * 1000:.2f}")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


main()
