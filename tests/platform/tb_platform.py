#!/usr/bin/env python3
"""A ThingsBoard-like "platform" on plain MQTT brokers, for mqblast's integration tests.

It is what ThingsBoard is to its devices, as far as the tests need: it answers attribute
requests and client-side RPC, sends server-side RPC to every device and checks each answer's
id and payload, and counts what the devices publish (gateway telemetry by device point).
At the end it writes its counts as one JSON object (--out, and stdout).

Where `me` lives. ThingsBoard routes `v1/devices/me/...` per connection: `me` is the device
the connection authenticated as. A plain broker has one topic space, so every device's
`v1/devices/me/rpc/request/+` would be one and the same subscription. mosquitto's per-listener
`mount_point` would give each device a space of its own, but mosquitto 2.0.11 (the version the
tests run) does not strip the prefix from what it delivers (eclipse-mosquitto/mosquitto#2244,
fixed in 2.0.12). So each device gets a broker of its own: the tests start one mosquitto per
device, mqblast spreads its clients over them (`-H a,b,c`: client i uses host i mod N), and
the platform connects to each (--ports, in client order). Device i is named "i" in the counts.
A second difference: a plain broker sends a client's own publishes back to it when it
subscribed to their topic; ThingsBoard does not. The platform speaks MQTT 5 and subscribes
with No Local, so its server-side requests do not come back to it as client-side calls.

Misbehaving on purpose (each counted, so tests compare counts exactly): every Nth request of
a device (attribute requests and RPC calls together, in arrival order) is answered twice
(--duplicate-every), late (--late-every, after --late-ms), or followed by an answer for an id
the device never used (--unknown-every); only the first --misbehave-until requests of each
device when given, so a test's last late answer arrives well before its run ends.

Gateways (--gateway-rpc N): every device a gateway announces on `v1/gateway/connect` gets N
server-side RPC requests on `v1/gateway/rpc` of that gateway's broker
(`{"device":NAME,"data":{"id":K,"method":"setValue","params":{...}}}`), and every answer
there (`{"device":NAME,"id":K,"data":...}`) is checked: a request of that device, answered
once, with the expected data; counts per device name under "gateway_rpc". With
--gateway-rpc-malformed M and --gateway-rpc-unknown U each gateway broker also gets, after
its first announcement, M requests that cannot be answered (no id; not JSON; no device name)
and U requests for a device no gateway announced: any answer to them counts as unknown.
--gateway-flood-rps R floods the first device announced on the first broker with R requests
a second for --flood-seconds ("flood_sent"; their answers count as "answered").

Python with paho-mqtt 1.x (the tests' virtualenv). Named tb_platform.py, not platform.py: a
script's directory comes first on sys.path, and a platform.py there hides the standard
library's `platform`, which paho imports. Stops after --run-for seconds, when stdin closes
(--stdin-stop), or on SIGTERM/SIGINT.
"""

import argparse
import heapq
import json
import signal
import socket
import sys
import threading
import time
from collections import defaultdict

import paho.mqtt.client as mqtt
from paho.mqtt.subscribeoptions import SubscribeOptions

ATTR_REQUEST = "v1/devices/me/attributes/request/"
ATTR_RESPONSE = "v1/devices/me/attributes/response/"
RPC_REQUEST = "v1/devices/me/rpc/request/"
RPC_RESPONSE = "v1/devices/me/rpc/response/"
# Ids of answers to requests never made: far above any id a test run issues.
UNKNOWN_ID_BASE = 900_000_000
# Ids of flood requests, apart from the ordinary server-side requests (1, 2, ...).
FLOOD_ID_BASE = 100_000_000
GATEWAY_RPC = "v1/gateway/rpc"
# The device named in requests for a device no gateway carries.
UNKNOWN_DEVICE = "no-such-device"
# What the malformed gateway requests are, in the order sent (cycled).
MALFORMED_GATEWAY_REQUESTS = [
    b'{"device":"%s","data":{"method":"noId"}}',
    b'not json at all',
    b'{"data":{"id":5,"method":"noDevice"}}',
]


class Device:
    """One device's broker (its `me`), the platform's connection to it, and its counts."""

    def __init__(self, platform, index, port):
        self.platform = platform
        self.name = str(index)
        self.port = port
        self.counts = defaultdict(int)
        self.requests_seen = 0  # attribute requests and RPC calls, for the misbehaviours
        self.server_rpc = {}  # request id -> the answer expected
        self.server_answers = defaultdict(int)  # request id -> answers received
        self.started = False  # server-side RPC started (the device has published)
        self.gateway_odd_sent = False  # malformed and unknown-device gateway requests
        self.gateway_flooded = False  # --gateway-flood-rps started
        self.subscribed = threading.Event()
        self.client = mqtt.Client(client_id=f"platform-{index}", protocol=mqtt.MQTTv5)
        self.client.max_inflight_messages_set(0)  # 0: no limit (paho's default is 20)
        self.client.max_queued_messages_set(0)
        self.client.on_connect = self.on_connect
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = self.on_message

    def on_connect(self, client, _userdata, _flags, reason, _properties=None):
        if reason != 0:
            sys.exit(f"platform: broker {self.port}: CONNACK {reason}")
        client.subscribe([("#", SubscribeOptions(qos=1, noLocal=True))])

    def on_message(self, _client, _userdata, msg):
        with self.platform.lock:
            try:
                self.platform.dispatch(self, msg.topic, msg.payload)
            except (ValueError, KeyError, TypeError, AttributeError):
                self.counts["not_understood"] += 1


class Platform:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.wake = threading.Condition(self.lock)
        self.stopping = threading.Event()
        # (due time, sequence, device, topic, payload): answers waiting for their time.
        self.outbox = []
        self.outbox_seq = 0
        self.devices = [Device(self, i, int(port)) for i, port in enumerate(args.ports.split(","))]
        self.gateway_points = defaultdict(int)
        self.gateway_connects = defaultdict(int)
        self.gateway_disconnects = defaultdict(int)
        # Gateway RPC: (device name, id) -> the answer expected, and answers received.
        self.gateway_rpc = {}
        self.gateway_rpc_answers = defaultdict(int)
        # Per device name: requests sent, answered, bad answers; and the others by kind.
        self.gateway_rpc_counts = defaultdict(lambda: defaultdict(int))
        self.gateway_rpc_other = defaultdict(int)

    # ---- receiving (the lock is held) ---------------------------------------------------

    def dispatch(self, device, topic, payload):
        c = device.counts
        if topic == "v1/devices/me/telemetry":
            c["telemetry"] += 1
        elif topic == "v1/devices/me/attributes":
            c["attributes"] += 1
        elif topic.startswith(ATTR_REQUEST):
            c["attribute_requests"] += 1
            self.answer(device, ATTR_RESPONSE, topic[len(ATTR_REQUEST):],
                        self.args.attributes.encode(), self.args.attr_delay_ms)
        elif topic.startswith(RPC_REQUEST):
            c["rpc_calls"] += 1
            self.answer(device, RPC_RESPONSE, topic[len(RPC_REQUEST):],
                        rpc_call_answer(payload), self.args.rpc_delay_ms)
        elif topic.startswith(RPC_RESPONSE):
            self.check_server_answer(device, topic[len(RPC_RESPONSE):], payload)
        elif topic == "v1/gateway/telemetry":
            c["gateway_messages"] += 1
            for name, points in json.loads(payload).items():
                self.gateway_points[name] += len(points)
        elif topic == "v1/gateway/connect":
            name = json.loads(payload)["device"]
            self.gateway_connects[name] += 1
            if self.args.gateway_rpc > 0 and self.gateway_connects[name] == 1:
                threading.Thread(target=self.send_gateway_rpc, args=(device, name),
                                 daemon=True).start()
            if self.args.gateway_flood_rps > 0 and device is self.devices[0] \
                    and not device.gateway_flooded:
                device.gateway_flooded = True
                threading.Thread(target=self.gateway_flood, args=(device, name),
                                 daemon=True).start()
            odd = self.args.gateway_rpc_malformed + self.args.gateway_rpc_unknown
            if odd > 0 and not device.gateway_odd_sent:
                device.gateway_odd_sent = True
                threading.Thread(target=self.send_odd_gateway_rpc, args=(device, name),
                                 daemon=True).start()
        elif topic == GATEWAY_RPC:
            self.check_gateway_answer(payload)
        elif topic == "v1/gateway/disconnect":
            self.gateway_disconnects[json.loads(payload)["device"]] += 1
        else:
            c["other"] += 1
        if not device.started:
            # The device subscribed at connect, before its first publish: requests reach it.
            device.started = True
            if self.args.server_rpc > 0:
                threading.Thread(target=self.send_server_rpc, args=(device,),
                                 daemon=True).start()
            if self.args.flood_rps > 0 and device is self.devices[0]:
                threading.Thread(target=self.flood, daemon=True).start()

    def answer(self, device, response, request_id, payload, delay_ms):
        """Answer a device's request on `response` + its id, misbehaving where told to."""
        a, c = self.args, device.counts
        device.requests_seen += 1
        n = device.requests_seen

        def every(k):
            return k > 0 and n % k == 0 and (a.misbehave_until == 0 or n <= a.misbehave_until)

        if every(a.late_every):
            delay_ms = a.late_ms
            c["late_sent"] += 1
        # ThingsBoard reads the id as an integer: `000000042` is answered as `42`.
        answer_id = str(int(request_id)) if request_id.isdigit() else request_id
        self.send_later(device, delay_ms, response + answer_id, payload)
        c["answers_sent"] += 1
        if every(a.duplicate_every):
            self.send_later(device, delay_ms, response + answer_id, payload)
            c["duplicates_sent"] += 1
        if every(a.unknown_every):
            self.send_later(device, delay_ms, f"{response}{UNKNOWN_ID_BASE + n}", payload)
            c["unknown_sent"] += 1

    def check_server_answer(self, device, request_id, payload):
        c = device.counts
        expected = device.server_rpc.get(request_id)
        if expected is None:
            c["server_rpc_unknown_answers"] += 1
            return
        device.server_answers[request_id] += 1
        if device.server_answers[request_id] > 1:
            c["server_rpc_duplicate_answers"] += 1
            return
        c["server_rpc_answered"] += 1
        try:
            ok = json.loads(payload) == expected
        except ValueError:
            ok = False
        if not ok:
            c["server_rpc_bad_payload"] += 1

    def check_gateway_answer(self, payload):
        """An answer on v1/gateway/rpc: of a request sent, once, with the data expected."""
        o = self.gateway_rpc_other
        try:
            answer = json.loads(payload)
            key = (answer["device"], answer["id"])
            data = answer["data"]
        except (ValueError, KeyError, TypeError):
            o["bad_answers"] += 1
            return
        expected = self.gateway_rpc.get(key)
        if expected is None:
            o["unknown_answers"] += 1
            return
        c = self.gateway_rpc_counts[key[0]]
        self.gateway_rpc_answers[key] += 1
        if self.gateway_rpc_answers[key] > 1:
            c["duplicate_answers"] += 1
            return
        c["answered"] += 1
        if data != expected:
            c["bad_payload"] += 1

    # ---- sending -------------------------------------------------------------------------

    def send_later(self, device, delay_ms, topic, payload):
        """Queue a publish for its time (the lock is held)."""
        self.outbox_seq += 1
        due = time.monotonic() + delay_ms / 1000.0
        heapq.heappush(self.outbox, (due, self.outbox_seq, device.name, topic, payload))
        self.wake.notify()

    def sender(self):
        with self.lock:
            while not self.stopping.is_set():
                if not self.outbox:
                    self.wake.wait(0.1)
                    continue
                due, _, name, topic, payload = self.outbox[0]
                wait = due - time.monotonic()
                if wait > 0:
                    self.wake.wait(wait)
                    continue
                heapq.heappop(self.outbox)
                self.devices[int(name)].client.publish(topic, payload, qos=self.args.qos)

    def send_server_rpc(self, device):
        """--server-rpc requests to one device, --server-rpc-interval-ms apart."""
        for k in range(1, self.args.server_rpc + 1):
            if self.stopping.is_set():
                return
            self.request(device, str(k), {"method": "setValue",
                                          "params": {"device": device.name, "n": k}})
            time.sleep(self.args.server_rpc_interval_ms / 1000.0)

    def request(self, device, request_id, body, qos=None):
        """Send one server-side RPC request, remembering the answer it must get."""
        expected = self.args.expect_answer
        with self.lock:
            device.server_rpc[request_id] = \
                body.get("params", {}) if expected is None else json.loads(expected)
            device.counts["server_rpc_sent"] += 1
        device.client.publish(RPC_REQUEST + request_id, json.dumps(body),
                              qos=self.args.qos if qos is None else qos)

    def send_gateway_rpc(self, device, name):
        """--gateway-rpc requests for gateway device `name` on its gateway's broker,
        --gateway-rpc-interval-ms apart (ids 1, 2, ... per device, as ThingsBoard numbers)."""
        expected_fixed = self.args.expect_answer
        for k in range(1, self.args.gateway_rpc + 1):
            if self.stopping.is_set():
                return
            params = {"device": name, "n": k}
            body = {"device": name, "data": {"id": k, "method": "setValue", "params": params}}
            with self.lock:
                self.gateway_rpc[(name, k)] = \
                    params if expected_fixed is None else json.loads(expected_fixed)
                self.gateway_rpc_counts[name]["sent"] += 1
            device.client.publish(GATEWAY_RPC, json.dumps(body), qos=self.args.qos)
            time.sleep(self.args.gateway_rpc_interval_ms / 1000.0)

    def gateway_flood(self, device, name):
        """--gateway-flood-rps gateway requests per second for the first device announced on
        the first broker, for --flood-seconds (ids from FLOOD_ID_BASE, QoS --flood-qos)."""
        a = self.args
        total = int(a.flood_seconds * a.gateway_flood_rps)
        start = time.monotonic()
        sent = 0
        while sent < total and not self.stopping.is_set():
            due = min(int((time.monotonic() - start) * a.gateway_flood_rps) + 1, total)
            while sent < due:
                sent += 1
                k = FLOOD_ID_BASE + sent
                params = {"n": sent}
                body = {"device": name, "data": {"id": k, "method": "flood", "params": params}}
                with self.lock:
                    self.gateway_rpc[(name, k)] = params
                    self.gateway_rpc_counts[name]["flood_sent"] += 1
                device.client.publish(GATEWAY_RPC, json.dumps(body), qos=a.flood_qos)
            time.sleep(0.001)

    def send_odd_gateway_rpc(self, device, name):
        """Requests no gateway can answer: malformed ones, and ones for a device no gateway
        carries (each counted as sent; any answer to them is unknown)."""
        a = self.args
        for k in range(a.gateway_rpc_malformed):
            template = MALFORMED_GATEWAY_REQUESTS[k % len(MALFORMED_GATEWAY_REQUESTS)]
            payload = template % name.encode() if b"%s" in template else template
            with self.lock:
                self.gateway_rpc_other["malformed_sent"] += 1
            device.client.publish(GATEWAY_RPC, payload, qos=a.qos)
        for k in range(1, a.gateway_rpc_unknown + 1):
            body = {"device": UNKNOWN_DEVICE, "data": {"id": k, "method": "x", "params": {}}}
            with self.lock:
                self.gateway_rpc_other["unknown_device_sent"] += 1
            device.client.publish(GATEWAY_RPC, json.dumps(body), qos=a.qos)

    def flood(self):
        """--flood-rps server-side requests per second to device 0, for --flood-seconds, from
        its first publish on."""
        a = self.args
        total = int(a.flood_seconds * a.flood_rps)
        start = time.monotonic()
        sent = 0
        while sent < total and not self.stopping.is_set():
            due = min(int((time.monotonic() - start) * a.flood_rps) + 1, total)
            while sent < due:
                sent += 1
                self.request(self.devices[0], str(FLOOD_ID_BASE + sent),
                             {"method": "flood", "params": {"n": sent}}, qos=a.flood_qos)
            time.sleep(0.001)

    # ---- running -------------------------------------------------------------------------

    def run(self):
        a = self.args
        for device in self.devices:
            device.client.connect(a.host, device.port, keepalive=60)
            # paho leaves Nagle on: a small publish would wait up to 40 ms for the previous
            # one's TCP ack, and every delay would read 40 ms too long.
            device.client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            device.client.loop_start()
        for device in self.devices:
            if not device.subscribed.wait(10):
                sys.exit(f"platform: no SUBACK from the broker on port {device.port} in 10 s")
        threading.Thread(target=self.sender, daemon=True).start()
        if a.ready_file:
            with open(a.ready_file, "w") as f:
                f.write("ready\n")
        if a.stdin_stop:
            threading.Thread(target=self.stop_at_stdin_end, daemon=True).start()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stopping.set())
        self.stopping.wait(a.run_for)
        self.stopping.set()
        with self.lock:
            self.wake.notify()
        time.sleep(0.2)  # let paho write what it holds
        for device in self.devices:
            device.client.disconnect()
            device.client.loop_stop()
        report = json.dumps(self.report(), sort_keys=True)
        if a.out:
            with open(a.out, "w") as f:
                f.write(report + "\n")
        print(report)

    def stop_at_stdin_end(self):
        sys.stdin.read()
        self.stopping.set()

    def report(self):
        with self.lock:
            devices = {}
            for device in self.devices:
                counts = dict(device.counts)
                counts["server_rpc_unanswered"] = sum(
                    1 for i in device.server_rpc if device.server_answers[i] == 0)
                devices[device.name] = counts
            gateway_rpc = {name: dict(c) for name, c in self.gateway_rpc_counts.items()}
            for (name, k) in self.gateway_rpc:
                if self.gateway_rpc_answers[(name, k)] == 0:
                    c = gateway_rpc[name]
                    c["unanswered"] = c.get("unanswered", 0) + 1
            return {"devices": devices,
                    "gateway_points": dict(self.gateway_points),
                    "gateway_connects": dict(self.gateway_connects),
                    "gateway_disconnects": dict(self.gateway_disconnects),
                    "gateway_rpc": gateway_rpc,
                    "gateway_rpc_other": dict(self.gateway_rpc_other)}


def rpc_call_answer(request):
    """A client-side RPC's answer: ThingsBoard's rule chain decides; here, the method echoed."""
    try:
        method = json.loads(request).get("method", "")
    except (ValueError, AttributeError):
        method = ""
    return json.dumps({"method": method, "result": "ok"}).encode()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--ports", required=True,
                   help="each device's broker port, comma-separated, in mqblast's client order")
    p.add_argument("--qos", type=int, default=1, help="QoS of the platform's publishes")
    p.add_argument("--attributes", default='{"client":{},"shared":{"fw":"1.0"}}',
                   help="the answer to attribute requests")
    p.add_argument("--attr-delay-ms", type=float, default=0)
    p.add_argument("--rpc-delay-ms", type=float, default=0)
    p.add_argument("--late-every", type=int, default=0)
    p.add_argument("--late-ms", type=float, default=0)
    p.add_argument("--duplicate-every", type=int, default=0)
    p.add_argument("--unknown-every", type=int, default=0)
    p.add_argument("--misbehave-until", type=int, default=0,
                   help="misbehave on a device's first N requests only (0: all)")
    p.add_argument("--server-rpc", type=int, default=0,
                   help="server-side RPC requests per device, from its first publish on")
    p.add_argument("--server-rpc-interval-ms", type=float, default=50)
    p.add_argument("--expect-answer", default=None,
                   help="JSON every server-side RPC answer must equal (default: its params)")
    p.add_argument("--flood-rps", type=float, default=0, help="server-side requests per second to device 0, from its first publish on")
    p.add_argument("--flood-seconds", type=float, default=0)
    p.add_argument("--flood-qos", type=int, default=0)
    p.add_argument("--gateway-rpc", type=int, default=0,
                   help="gateway RPC requests per gateway device, from its announcement on")
    p.add_argument("--gateway-rpc-interval-ms", type=float, default=50)
    p.add_argument("--gateway-rpc-malformed", type=int, default=0,
                   help="malformed gateway RPC requests per gateway broker")
    p.add_argument("--gateway-rpc-unknown", type=int, default=0,
                   help="gateway RPC requests for an unknown device per gateway broker")
    p.add_argument("--gateway-flood-rps", type=float, default=0,
                   help="gateway requests per second for the first gateway device announced")
    p.add_argument("--run-for", type=float, default=60)
    p.add_argument("--stdin-stop", action="store_true", help="stop when stdin closes")
    p.add_argument("--ready-file", default=None, help="written once subscribed everywhere")
    p.add_argument("--out", default=None, help="write the counts here as JSON")
    Platform(p.parse_args()).run()


if __name__ == "__main__":
    main()
