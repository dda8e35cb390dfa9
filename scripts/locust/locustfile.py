"""The old way, for scripts/bench_vs_locust.sh: Locust + paho-mqtt, one paho client per user.

Why it exists: mqblast replaces a Locust + paho-mqtt script; the comparison is only fair if
the old script is reproduced as it was. Each Locust user owns one paho client (its own network
thread, `loop_start`), publishes the same ~200-byte telemetry record at QoS 1 as fast as
PUBACKs come back (one message in flight per user, as the old script's `wait_for_publish`),
and reports PUBLISH -> PUBACK latency to Locust as a request of type "MQTT".

Settings come from the environment: MQTT_HOST (127.0.0.1), MQTT_PORT (1883), MQTT_TOPIC
(bench/locust), PUBLISH_TIMEOUT_S (10).
"""

import json
import os
import time

import paho.mqtt.client as mqtt
from locust import User, between, events, task  # noqa: F401  (between kept for users' edits)

HOST = os.environ.get("MQTT_HOST", "127.0.0.1")
PORT = int(os.environ.get("MQTT_PORT", "1883"))
TOPIC = os.environ.get("MQTT_TOPIC", "bench/locust")
TIMEOUT_S = float(os.environ.get("PUBLISH_TIMEOUT_S", "10"))

_counter = 0


def payload(index, seq):
    """The same record as mqblast's data.json, serialized the same way (compact)."""
    return json.dumps(
        {
            "ts": int(time.time() * 1000),
            "values": {
                "device": f"tracker-{index}",
                "seq": seq,
                "latitude": 52.520008,
                "longitude": 13.404954,
                "altitude": 34.5,
                "speed": 42.7,
                "heading": 187,
                "satellites": 9,
                "hdop": 0.9,
                "battery": 87,
                "ignition": True,
            },
        },
        separators=(",", ":"),
    )


class MqttUser(User):
    """One device: one paho client, QoS 1 publishes back to back."""

    def on_start(self):
        global _counter
        self.index = _counter
        _counter += 1
        self.seq = 0
        self.client = mqtt.Client(client_id=f"locust-{self.index}", clean_session=True)
        self.client.connect(HOST, PORT, keepalive=60)
        self.client.loop_start()

    def on_stop(self):
        self.client.loop_stop()
        self.client.disconnect()

    @task
    def publish(self):
        self.seq += 1
        body = payload(self.index, self.seq)
        start = time.perf_counter()
        info = self.client.publish(TOPIC, body, qos=1)
        exception = None
        try:
            info.wait_for_publish(timeout=TIMEOUT_S)
            if not info.is_published():
                exception = TimeoutError("no PUBACK")
        except Exception as e:  # paho raises on a lost connection
            exception = e
        self.environment.events.request.fire(
            request_type="MQTT",
            name=f"publish:1:{TOPIC}",
            response_time=(time.perf_counter() - start) * 1000.0,
            response_length=len(body),
            exception=exception,
            context={},
        )
