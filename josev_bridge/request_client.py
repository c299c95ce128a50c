"""Play the OCPP service once: publish a request on ocpp/cs and wait for its response on cs/ocpp.

Used by `josev-bridge request` (a technician's check), the demo and the end-to-end tests, so they
all go through the same broker path as Josev does.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass

import paho.mqtt.client as mqtt

from .adapters.mqtt_link import build_client
from .config import MqttConfig


@dataclass(frozen=True)
class Reply:
    request: dict
    response: dict | None  # None: no answer within the timeout
    round_trip_ms: float | None


class RequestClient:
    """A connected requester; reuse it for many requests (one connection, one subscription)."""

    def __init__(self, cfg: MqttConfig, client_id: str | None = None, connect_timeout: float = 10.0) -> None:
        self._cfg = cfg
        self._client, props = build_client(cfg, client_id or f"josev-bridge-request-{uuid.uuid4().hex[:8]}",
                                           persistent=False)
        self._pending: dict[str, tuple[threading.Event, list]] = {}
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._client.on_connect = lambda c, u, f, rc, p: c.subscribe(cfg.response_topic, qos=1)
        self._client.on_subscribe = lambda *a: self._subscribed.set()
        self._client.on_message = self._on_message
        self._client.connect(cfg.host, cfg.port, 30, properties=props)
        self._client.loop_start()
        if not self._subscribed.wait(connect_timeout):
            self.close()
            raise TimeoutError(f"no subscription to {cfg.response_topic} on {cfg.host}:{cfg.port} "
                               f"within {connect_timeout:g} s")

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        try:
            obj = json.loads(message.payload)
        except ValueError:
            return
        # an id is a string (schemas/envelope): another type, e.g. a list, would not even hash, and an
        # exception here would end paho's network thread, and with it every later reply
        msg_id = obj.get("id") if isinstance(obj, dict) and obj.get("type") == "response" else None
        waiter = self._pending.get(msg_id) if isinstance(msg_id, str) else None
        if waiter is not None:
            waiter[1].append((time.perf_counter(), obj))
            waiter[0].set()

    def send(self, name: str, data: dict, timeout: float = 5.0, msg_id: str | None = None) -> Reply:
        request = {"id": msg_id or str(uuid.uuid4()), "name": name, "type": "request", "data": data}
        return self.send_raw(request, timeout)

    def send_raw(self, request: dict, timeout: float = 5.0) -> Reply:
        event: threading.Event = threading.Event()
        box: list = []
        with self._lock:
            self._pending[request["id"]] = (event, box)
        try:
            start = time.perf_counter()
            self._client.publish(self._cfg.request_topic, json.dumps(request), qos=1)
            if not event.wait(timeout):
                return Reply(request, None, None)
            at, response = box[0]
            return Reply(request, response, (at - start) * 1000)
        finally:
            with self._lock:
                self._pending.pop(request["id"], None)

    def publish_raw(self, payload: bytes) -> None:
        """Publish arbitrary bytes on the request topic (tests of bad input)."""
        self._client.publish(self._cfg.request_topic, payload, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def __enter__(self) -> RequestClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
