"""The Locust master's side of an mqblast run: `locust --master -f scripts/locust/mqblast_master.py`.

Why it exists: a Locust master must load a locustfile with at least one User class, and it
hands its users out by class name. The master never runs users itself; mqblast workers
(`mqblast --worker --master-host HOST`) run them and report back, so the class here is only a
name. mqblast serves every class it is sent (this one, the old script's `MQTTLocust`, any
other), and the user counts it reports add up to the ones the master asked for.

The MQTT settings below are custom arguments: set them on the master's command line
(`--mqtt-topic v1/lptrk/gps`), in its web UI (they show under "Custom parameters"), or in
pyproject's [tool.locust]. They reach every worker in the spawn message. An empty value leaves
the worker's own setting (its config.toml, MQBLAST_* environment or flags); a value set here
wins over the worker's own. The broker is the master's host field (-H mqtt://broker:1883).
Files (a payload file, the device tokens) are the worker's own: a master does not choose files
on the workers' machines, and workers ignore such settings from it. A payload preset is not a
file: --mqtt-payload names one (smart-meter, smart-tracker, industrial-plc) and
--mqtt-datapoints sizes industrial-plc.
"""

from locust import User, constant, events, task
from locust.runners import MasterRunner


@events.init_command_line_parser.add_listener
def _(parser):
    group = parser.add_argument_group("mqblast", "MQTT settings sent to mqblast workers (empty: the worker's own)")
    group.add_argument("--mqtt-topic", type=str, default="", help="Topic template, e.g. v1/lptrk/gps")
    group.add_argument("--mqtt-qos", type=str, default="", help="QoS: 0, 1 or 2")
    group.add_argument("--mqtt-timeout", type=str, default="", help="Publish timeout, with a unit: 10s, 10000ms")
    group.add_argument("--mqtt-interval", type=str, default="", help="Per-user publish interval: 1s, 100ms, 0 (as fast as acks allow)")
    group.add_argument("--mqtt-client-id", type=str, default="", help="Client id template, e.g. dev-{i}")
    group.add_argument("--mqtt-max-inflight", type=str, default="", help="Unacknowledged publishes per user")
    group.add_argument("--mqtt-version", type=str, default="", help="MQTT version: 3.1.1 or 5")
    group.add_argument("--mqtt-request-type", type=str, default="", help='The "Type" column (default MQTT)')
    group.add_argument("--mqtt-payload", type=str, default="", help="A payload preset: smart-meter, smart-tracker or industrial-plc (never a file)")
    group.add_argument("--mqtt-datapoints", type=str, default="", help="Data points of industrial-plc, 1 to 999 (default 60)")


@events.test_start.add_listener
def _(environment, **_kwargs):
    """Lists the test's workers (their indexes at this master) in the spawn messages, so each
    mqblast worker takes its own part of the device tokens, as `--shard K/N` does: K its place
    in this list, N its length. Without it, every worker would use the tokens from the first."""
    runner = environment.runner
    if not isinstance(runner, MasterRunner) or environment.parsed_options is None:
        return
    workers = runner.clients.ready + runner.clients.running + runner.clients.spawning
    environment.parsed_options.mqblast_workers = sorted(runner.get_worker_index(w.id) for w in workers)


class MqttUser(User):
    """Named so the master's tables read as MQTT users; never run on the master."""

    wait_time = constant(1)

    @task
    def publish(self):
        pass
