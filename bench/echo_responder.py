"""The baseline for bench/roundtrip.py: a bare paho echo responder, no validation, no lookup.

It is what the bridge would be if it did nothing but answer: the same paho-mqtt 2.x client settings
as the bridge's (callback API v2, MQTT v5, TCP_NODELAY on its socket, an in-flight window of 1000
and Receive Maximum 1000), subscribed at QoS 1 to its own request topic; for every request it
publishes at QoS 1 a response with the same id and name, type "response" and a fixed timestamp.

    python bench/echo_responder.py --port 1883

Prints one line, READY, once its subscription is acknowledged. SIGTERM ends it.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

REQUEST_TOPIC = "bench/echo/req"
RESPONSE_TOPIC = "bench/echo/resp"
TIMESTAMP = "2026-02-17T10:20:30.123Z"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--request-topic", default=REQUEST_TOPIC)
    parser.add_argument("--response-topic", default=RESPONSE_TOPIC)
    args = parser.parse_args(argv)
    response_topic = args.response_topic

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-echo-responder-{os.getpid()}",
                         protocol=mqtt.MQTTv5)
    client.on_socket_open = lambda c, u, sock: sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(1000)
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = 0
    properties.ReceiveMaximum = 1000

    def on_connect(c, userdata, flags, reason_code, props) -> None:
        c.subscribe(args.request_topic, qos=1)

    def on_subscribe(c, userdata, mid, reason_codes, props) -> None:
        print("READY", flush=True)

    def on_message(c, userdata, message: mqtt.MQTTMessage) -> None:
        request = json.loads(message.payload)
        c.publish(response_topic, json.dumps({"id": request["id"], "name": request["name"], "type": "response",
                                              "data": {"timestamp": TIMESTAMP}}, separators=(",", ":")), qos=1)

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.connect(args.host, args.port, 30, properties=properties)
    client.loop_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
