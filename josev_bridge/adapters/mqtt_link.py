"""The MQTT connection to the board's broker (paho-mqtt 2.x, callback API v2).

Rules learnt the hard way (docs and domain notes): subscribe in on_connect so subscriptions come
back after a reconnect; keep a persistent session so requests published while we were away are
still delivered; set TCP_NODELAY or every QoS 1 round trip costs ~44 ms; never block or raise in a
callback (it kills or wedges paho's network thread); bound the outgoing queue.

Backpressure: a request is acknowledged (PUBACK) only once the broker has acknowledged its answer
(or at once when there is no answer, or when the queue refused its answer: that one is journaled
NotSent, not retried), in the order requests arrived, so a request the bridge took but never
answered (a crash, a lost connection) is delivered again, and answered again from the reply cache.
The bridge asks for at most `receive_maximum(cfg)` requests in flight (MQTT 5 Receive Maximum);
mosquitto 2.0.11 (Debian 12) overruns that window once the client publishes too (measured: 3,500
unacknowledged with a window of 100; eclipse-mosquitto/mosquitto#2301),
so the outgoing queue itself is sized to take everything the shipped broker settings let the broker
hold for us (max_inflight_messages 1000 + max_queued_messages 10000). Every message the bridge
publishes is small (answers ~150 B, alerts < 2 KiB, ~1.7 KiB of paho's bookkeeping each), so the
count bound is also its byte bound: ~25 MiB at the default 12,000.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ..config import MqttConfig, read_secret

log = logging.getLogger("josev_bridge.mqtt")

ONLINE = b"online"
OFFLINE = b"offline"

MessageHandler = Callable[[mqtt.MQTTMessage], None]


@dataclass(frozen=True, slots=True)
class ClientOptions:
    """What differs between the MQTT clients the bridge builds: the board link (a persistent
    session that paho reconnects), a requester (`josev-bridge request`, the bench) and export (one
    client per connection, no session, its own window)."""

    client_id: str
    protocol: Literal["5", "3.1.1"] = "5"
    username: str | None = None
    password: str | None = None
    tls: ssl.SSLContext | None = None
    persistent: bool = False  # keep the session (and requests queued for us) while we are away
    session_expiry: int = 0  # MQTT 5: seconds the broker keeps a persistent session
    receive_maximum: int | None = None  # MQTT 5 only; None: the broker's default
    max_inflight: int = 1000
    max_queued: int = 0  # 0: unbounded in paho
    reconnect_delays: tuple[float, float] | None = None  # (min, max) s; None: no automatic reconnect
    connect_timeout: float | None = None  # None: paho's default


def new_client(opts: ClientOptions) -> tuple[mqtt.Client, Properties | None]:
    """A configured paho client (TCP_NODELAY on every connection) and the CONNECT properties to pass
    to connect()."""
    v5 = opts.protocol == "5"
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=opts.client_id,
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        clean_session=None if v5 else not opts.persistent,
        reconnect_on_failure=opts.reconnect_delays is not None,
    )
    if opts.username:
        client.username_pw_set(opts.username, opts.password)
    if opts.tls is not None:
        client.tls_set_context(opts.tls)
    if opts.connect_timeout is not None:
        client.connect_timeout = opts.connect_timeout
    client.on_socket_open = _set_nodelay
    client.max_inflight_messages_set(opts.max_inflight)
    client.max_queued_messages_set(opts.max_queued)
    if opts.reconnect_delays is not None:
        # paho annotates whole seconds, but takes any number (0.5 s is the shipped minimum)
        client.reconnect_delay_set(*opts.reconnect_delays)  # type: ignore[arg-type]
    properties = None
    if v5:
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = opts.session_expiry if opts.persistent else 0
        if opts.receive_maximum is not None:
            properties.ReceiveMaximum = opts.receive_maximum
    return client, properties


def tls_context(ca: str | None, cert: str | None, key: str | None) -> ssl.SSLContext:
    """Verify the broker (its CA, or the system's store) and its host name; a client certificate if
    set. Raises OSError or ssl.SSLError naming what is wrong with the files."""
    context = ssl.create_default_context(cafile=ca)
    if cert:
        context.load_cert_chain(cert, key)
    return context


def build_client(cfg: MqttConfig, client_id: str, *, persistent: bool) -> tuple[mqtt.Client, Properties | None]:
    """A client for the board's broker as `[mqtt]` configures it."""
    password = read_secret(cfg.password_file, "[mqtt] password_file") if cfg.username and cfg.password_file else None
    tls = tls_context(cfg.tls_ca, cfg.tls_cert, cfg.tls_key) if cfg.tls_ca or cfg.tls_cert else None
    return new_client(ClientOptions(
        client_id=client_id, protocol=cfg.protocol, username=cfg.username, password=password, tls=tls,
        persistent=persistent, session_expiry=cfg.session_expiry, receive_maximum=receive_maximum(cfg),
        max_inflight=1000, max_queued=cfg.max_queued_messages,
        reconnect_delays=(cfg.reconnect_min_delay, cfg.reconnect_max_delay)))


def receive_maximum(cfg: MqttConfig) -> int:
    """Requests the broker may have unacknowledged with us: at most half the outgoing queue, so their
    answers fit in it with room to spare for alerts and status messages."""
    return max(1, min(1000, cfg.max_queued_messages // 2))


def _set_nodelay(client: mqtt.Client, userdata: object, sock: mqtt.SocketLike) -> None:
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # type: ignore[attr-defined]  # see below
    except (OSError, AttributeError) as exc:  # e.g. a unix socket, or a websocket transport (no setsockopt)
        log.debug("TCP_NODELAY not set: %s", exc)


class InboundAcks:
    """Requests are acknowledged in the order they arrived (MQTT 5 section 4.6 asks for it; 3.1.1
    brokers expect it), each once it is done: at once when it got no answer, else when the broker
    acknowledged its answer. Network thread only."""

    def __init__(self) -> None:
        self._order: deque[int] = deque()
        self._waiting: set[int] = set()  # the mids in _order
        self._done: set[int] = set()

    def arrived(self, mid: int) -> None:
        self._order.append(mid)
        self._waiting.add(mid)

    def done(self, mid: int) -> list[int]:
        """Mark `mid` done; returns the requests to acknowledge now, in order. A mid this connection
        is not waiting for (an answer's PUBACK from before a reconnect) is ignored."""
        if mid not in self._waiting:
            return []
        self._done.add(mid)
        ready = []
        while self._order and self._order[0] in self._done:
            head = self._order.popleft()
            self._done.discard(head)
            self._waiting.discard(head)
            ready.append(head)
        return ready

    def clear(self) -> None:
        self._order.clear()
        self._waiting.clear()
        self._done.clear()


class MqttLink:
    """A long-lived, self-healing connection with a retained online/offline status and a last will."""

    def __init__(self, cfg: MqttConfig, *, status_topic: str, subscriptions: list[str],
                 on_message: MessageHandler) -> None:
        self._cfg = cfg
        self._status_topic = status_topic
        self._subscriptions = subscriptions
        self._handler = on_message
        self._client, self._properties = build_client(cfg, cfg.client_id, persistent=True)
        self._client.will_set(status_topic, OFFLINE, qos=1, retain=True)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_message = self._on_message
        self._client.on_publish = self._on_publish
        self._client.manual_ack_set(True)
        self._thread = threading.Thread(target=self._run, name="mqtt", daemon=True)
        self._loop_thread: int | None = None
        self._handling_mid: int | None = None  # the request being handled in the network thread
        self._ack_after: dict[int, int] = {}  # answer's mid -> request's mid, acknowledged on its PUBACK
        self._acks = InboundAcks()
        self.connected = threading.Event()
        self.dropped_publishes = 0
        self.refused_by_broker = 0  # answers the broker acknowledged with a failure code (MQTT 5)
        self.failed_connects = 0  # attempts that found no broker (TCP refused, unreachable), in all
        self._failing: tuple[int, float] | None = None  # (failed attempts, since) while no broker answers

    def start(self) -> None:
        """Start connecting in the background; start-up never waits for the broker."""
        self._client.connect_async(self._cfg.host, self._cfg.port, self._cfg.keepalive,
                                   clean_start=False, properties=self._properties)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        if self.connected.is_set():
            info = self._client.publish(self._status_topic, OFFLINE, qos=1, retain=True)
            try:
                info.wait_for_publish(timeout)  # not in a callback: safe to wait here
            except (RuntimeError, ValueError):
                pass
        self._client.disconnect()
        self._thread.join(timeout)

    def alive(self) -> bool:
        return self._thread.is_alive()

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> str | None:
        """Queue a message; never blocks. None when paho took it, else why not (and a log line).

        Called while a request is being handled, the request's acknowledgement waits for this
        message's PUBACK (see the module's docstring).
        """
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc == mqtt.MQTT_ERR_SUCCESS or info.rc == mqtt.MQTT_ERR_NO_CONN:
            # NO_CONN: queued in paho and sent after the reconnect
            if self._handling_mid is not None and qos and threading.get_ident() == self._loop_thread:
                self._ack_after[info.mid] = self._handling_mid
                self._handling_mid = None
            return None
        self.dropped_publishes += 1
        reason = mqtt.error_string(info.rc)
        log.error("publish to %s dropped: %s", topic, reason)
        return reason

    # -- paho callbacks (network thread: never block, never raise) ---------------------------------
    def _run(self) -> None:
        self._loop_thread = threading.get_ident()
        try:
            self._client.loop_forever(retry_first_connection=True)
        except Exception:
            log.exception("MQTT network loop ended unexpectedly")

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        try:
            if reason_code.is_failure:
                log.error("broker %s:%d refused the connection: %s", self._cfg.host, self._cfg.port, reason_code)
                return
            after = ""
            if self._failing is not None:
                attempts, since = self._failing
                after = f", after {attempts} failed attempt(s) over {time.monotonic() - since:.1f} s"
                self._failing = None
            log.info("connected to broker %s:%d (session present: %s%s)", self._cfg.host, self._cfg.port,
                     flags.session_present, after)
            # Acknowledgements belong to a connection: the broker sends every request we did not
            # acknowledge again (a broker restored from its last save may also reuse their ids for
            # new ones), so nothing from before is carried over; a request sent again is answered
            # again, with the same answer from the reply cache (QoS 1 is at least once).
            self._acks.clear()
            self._ack_after.clear()
            client.subscribe([(topic, 1) for topic in self._subscriptions])
            client.publish(self._status_topic, ONLINE, qos=1, retain=True)
            self.connected.set()
        except Exception:
            log.exception("error in on_connect")

    def _on_connect_fail(self, client, userdata) -> None:
        """No broker answered (paho gives no reason): said once per outage, not once per attempt,
        so a broker that is down for an hour is one line, and the line that ends it counts them."""
        self.failed_connects += 1
        if self._failing is None:
            self._failing = (0, time.monotonic())
            log.warning("cannot connect to broker %s:%d (paho gives no reason: nothing listening, the host "
                        "unreachable or its name unresolved, or TLS refused); retrying "
                        "every %g-%g s; get_event_timestamp is not answered until it is back", self._cfg.host,
                        self._cfg.port, self._cfg.reconnect_min_delay, self._cfg.reconnect_max_delay)
        self._failing = (self._failing[0] + 1, self._failing[1])

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected.clear()
        if reason_code != 0:
            log.warning("disconnected from broker: %s (reconnecting with backoff)", reason_code)

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        if message.qos:
            self._acks.arrived(message.mid)
        self._handling_mid = message.mid if message.qos else None
        try:
            self._handler(message)
        except Exception:
            log.exception("error handling a message on %s; message dropped", message.topic)
        finally:
            if self._handling_mid is not None:  # no answer was queued: done with it now
                self._acknowledge(client, self._handling_mid)
            self._handling_mid = None

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        request = self._ack_after.pop(mid, None)
        if request is None:
            return
        if reason_code.is_failure:  # e.g. an ACL refusing cs/ocpp: the answer went nowhere
            self.refused_by_broker += 1
            log.error("the broker refused our answer (mid %d) to request mid %d: %s", mid, request, reason_code)
        self._acknowledge(client, request)

    def _acknowledge(self, client: mqtt.Client, request: int) -> None:
        for mid in self._acks.done(request):
            client.ack(mid, 1)
