"""The TOML configuration: typed sections, unknown keys and bad values rejected with the key's name.

Paths stay strings here; adapters open them. Nothing in this module touches the network or the port.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .core.alert_muting import MuteRule, MuteRuleError, parse_rules
from .core.alert_recipients import Recipient, RecipientError, parse_recipients
from .core.alerts import AlertSettings, AlertSettingsError

DEFAULT_CONFIG = "/etc/josev-bridge/config.toml"


class ConfigError(ValueError):
    """A configuration problem; the message names the file and the key."""


@dataclass(frozen=True)
class MqttConfig:
    host: str = "127.0.0.1"
    port: int = 1883
    client_id: str = "josev-bridge"
    username: str | None = None
    password_file: str | None = None
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    protocol: Literal["5", "3.1.1"] = "5"
    keepalive: int = 30
    session_expiry: int = 3600  # seconds the broker keeps our session (and queued requests) while we are away
    max_queued_messages: int = 12000  # bound on paho's outgoing queue (adapters/mqtt_link.py says why this size)
    reconnect_min_delay: float = 0.5
    reconnect_max_delay: float = 30.0
    request_topic: str = "ocpp/cs"
    response_topic: str = "cs/ocpp"
    josev_request_topic: str = "josev/cs"  # set_variable_validate (device model in step with Josev)
    josev_response_topic: str = "cs/josev"
    status_topic: str = ""  # default: josev-bridge/<charger identity>/status


@dataclass(frozen=True)
class SerialConfig:
    url: str = ""  # a device path or any pyserial URL (e.g. /dev/ttyUSB0, rfc2217://host:port)
    baudrate: int = 115200
    keepalive_interval: float = 1.0
    mcu_silence_timeout: float = 5.0
    reopen_min_delay: float = 0.2
    reopen_max_delay: float = 10.0


@dataclass(frozen=True)
class PathsConfig:
    state_dir: str = "/var/lib/josev-bridge"
    device_model_dir: str = ""  # default: the definitions shipped with the package
    runtime_dir: str = "/run/josev-bridge"  # status.json for `josev-bridge status` (tmpfs: no flash wear)


@dataclass(frozen=True)
class ChargerConfig:
    identity: str = "josev-charger"
    fleet_id: int = 1  # the fleet's numeric id of this charger: Flipturn's numeric `chargerId`
    # What alerts say about the charger (Flipturn's `charger` and `port` objects); unknown stays null.
    name: str = ""  # default: the identity
    manufacturer: str = ""
    model: str = ""
    serial_number: str = ""
    charger_type: str = ""  # e.g. "AC", "DCFC"
    network_service_provider: str = ""
    evse_count: int = 1
    max_power_kw: float = 0.0  # per EVSE; 0 = unknown


@dataclass(frozen=True)
class JournalConfig:
    enabled: bool = True
    max_age_days: float = 30.0
    max_size_mb: float = 32.0  # the database file never grows past this (flash is small)


@dataclass(frozen=True)
class ApiConfig:
    enabled: bool = True
    listen: str = "127.0.0.1:8080"  # host:port; loopback unless you mean it
    token_file: str = ""  # default: <state_dir>/api-token, created (0600) at first start
    rate_limit_per_s: float = 20.0  # requests per second per client address, burst of twice that; then 429

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


@dataclass(frozen=True)
class ExportConfig:
    """Store-and-forward of journal rows to the fleet's MQTT broker (docs/journal-export.md).

    TLS is on by default and the port is 8883, MQTT's TLS port: the fleet's broker is reached over
    a network the charger does not control, and the credentials must not cross it in the clear.
    Without tls_ca the system's CA store verifies the broker (public CAs); `tls = false` with
    `port = 1883` is for a broker on a trusted link (and for tests).
    """

    enabled: bool = False
    host: str = ""
    port: int = 8883
    tls: bool = True
    client_id: str = ""  # default: josev-bridge-export-<charger identity>
    username: str | None = None
    password_file: str | None = None
    tls_ca: str | None = None  # default with tls: the system's CA store
    tls_cert: str | None = None
    tls_key: str | None = None
    protocol: Literal["5", "3.1.1"] = "5"
    topic_prefix: str = "josev-bridge"  # rows go to <topic_prefix>/<charger identity>/journal
    keepalive: int = 60
    connect_timeout: float = 10.0  # seconds for TCP, TLS and CONNACK together
    reconnect_min_delay: float = 1.0
    reconnect_max_delay: float = 60.0  # a fleet broker reached over a cellular link: do not hammer it
    max_inflight: int = 32  # rows published and not yet acknowledged (the in-flight window; refilled by halves,
    # so export works in short bursts of 16 rows between the answers)
    # Rows per second at most (0 = no limit): export runs in the bridge's process and paho's CPU per
    # message adds up; 200/s is 20x a busy charger's journal and keeps export a small share of a core
    # even while a request flood fills the outbox (docs/performance.md).
    max_rows_per_s: float = 200.0


@dataclass(frozen=True)
class EventTimestampConfig:
    reply_with_current_time_when_unknown: bool = False  # opt-in: answering with "now" is not a hardware time


@dataclass(frozen=True)
class AlertsConfig:
    """`[alerts]`: the engine's thresholds as plain keys, plus `[[alerts.recipients]]` and `[[alerts.mute]]`."""

    enabled: bool = True
    settings: AlertSettings = field(default_factory=AlertSettings)
    recipients: tuple[Recipient, ...] = ()  # none configured: default_recipients(identity)
    mute: tuple[MuteRule, ...] = ()


@dataclass(frozen=True)
class LoggingConfig:
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


@dataclass(frozen=True)
class Config:
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    serial: SerialConfig = field(default_factory=SerialConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    charger: ChargerConfig = field(default_factory=ChargerConfig)
    get_event_timestamp: EventTimestampConfig = field(default_factory=EventTimestampConfig)
    journal: JournalConfig = field(default_factory=JournalConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    source: str = "<defaults>"

    @property
    def status_topic(self) -> str:
        return self.mqtt.status_topic or f"josev-bridge/{self.charger.identity}/status"

    @property
    def state_dir(self) -> Path:
        return Path(self.paths.state_dir)

    @property
    def api_token_file(self) -> Path:
        return Path(self.api.token_file) if self.api.token_file else self.state_dir / "api-token"

    @property
    def export_client_id(self) -> str:
        return self.export.client_id or f"josev-bridge-export-{self.charger.identity}"

    @property
    def export_topic(self) -> str:
        return f"{self.export.topic_prefix}/{self.charger.identity}/journal"


# What SIGHUP applies to the running bridge; every other section changed is named as needing a restart.
LIVE_SECTIONS = ("logging", "get_event_timestamp")


def reload_plan(old: Config, new: Config) -> tuple[list[str], list[str]]:
    """(sections applied at once, sections that need a restart) among those that changed, in file order.
    Over every section of Config, so a section added later cannot be silently ignored by a reload."""
    changed = [f.name for f in dataclasses.fields(Config) if f.name != "source"
               and getattr(old, f.name) != getattr(new, f.name)]
    return [s for s in changed if s in LIVE_SECTIONS], [s for s in changed if s not in LIVE_SECTIONS]


_POSITIVE = {"port", "keepalive", "baudrate", "max_queued_messages", "keepalive_interval",
             "mcu_silence_timeout", "reopen_min_delay", "reopen_max_delay", "reconnect_min_delay",
             "reconnect_max_delay", "max_age_days", "max_size_mb", "rate_limit_per_s", "fleet_id", "evse_count"}
_REQUIRED = {("serial", "url"), ("charger", "identity")}


def load(path: str | Path) -> Config:
    """Read and validate a config file; raise ConfigError naming the key on any problem."""
    p = Path(path)
    try:
        with p.open("rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such file") from None
    except PermissionError:
        raise ConfigError(f"{p}: permission denied") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from None
    return from_dict(raw, source=str(p))


def from_dict(raw: dict, source: str = "<dict>") -> Config:
    sections = {f.name: f for f in dataclasses.fields(Config) if f.name != "source"}
    built: dict[str, object] = {}
    for name, value in raw.items():
        if name not in sections:
            raise ConfigError(f"{source}: unknown section [{name}] (known: {', '.join(sorted(sections))})")
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: [{name}] must be a table")
        if name == "alerts":
            built[name] = _alerts(source, value, raw.get("charger", {}).get("identity", ChargerConfig.identity))
            continue
        # every section's default_factory is its dataclass
        built[name] = _section(source, name, sections[name].default_factory, value)  # type: ignore[arg-type]
    config = Config(**built, source=source)  # type: ignore[arg-type]
    _check_required(config, source)
    return config


def _alerts(source: str, values: dict, identity: str) -> AlertsConfig:
    """The alert modules parse their own tables (their errors name the key); wrapped with the file name."""
    values = dict(values)
    enabled = values.pop("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError(f"{source}: [alerts] enabled: expected true or false, got {enabled!r}")
    recipients, mute = values.pop("recipients", None), values.pop("mute", [])
    try:
        return AlertsConfig(enabled, AlertSettings.from_mapping(values),
                            parse_recipients(recipients, identity) if recipients is not None else (),
                            parse_rules(mute))
    except (AlertSettingsError, RecipientError, MuteRuleError) as exc:
        raise ConfigError(f"{source}: {exc}") from None


def _section(source: str, section: str, cls: type, values: dict) -> object:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"{source}: [{section}] {key}: unknown key (known: {', '.join(sorted(known))})")
        kwargs[key] = _coerce(f"{source}: [{section}] {key}", key, hints[key], value)
    return cls(**kwargs)


def _coerce(where: str, key: str, hint: object, value: object) -> object:
    origin = typing.get_origin(hint)
    if origin is Literal:
        allowed = typing.get_args(hint)
        if value not in allowed:
            raise ConfigError(f"{where}: expected one of {', '.join(repr(a) for a in allowed)}, got {value!r}")
        return value
    if origin in (types.UnionType, typing.Union):  # "X | None": absent means None; TOML has no null
        (inner,) = [a for a in typing.get_args(hint) if a is not type(None)]
        return _coerce(where, key, inner, value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if hint is int or hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                (hint is int and not isinstance(value, int)):
            kind = "an integer" if hint is int else "a number"
            raise ConfigError(f"{where}: expected {kind}, got {value!r}")
        if key in _POSITIVE and value <= 0:
            raise ConfigError(f"{where}: must be greater than 0, got {value!r}")
        if key == "port" and value > 65535:
            raise ConfigError(f"{where}: must be a TCP port 1..65535, got {value!r}")
        return hint(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported type {hint!r}")  # pragma: no cover - programming error


def _check_required(config: Config, source: str) -> None:
    for section, key in _REQUIRED:
        if not getattr(getattr(config, section), key):
            raise ConfigError(f"{source}: [{section}] {key}: required")
    m = config.mqtt
    if bool(m.tls_cert) != bool(m.tls_key):
        raise ConfigError(f"{source}: [mqtt] tls_cert and tls_key: set both or neither")
    if m.password_file and not m.username:
        raise ConfigError(f"{source}: [mqtt] password_file: needs [mqtt] username")
    if m.reconnect_min_delay > m.reconnect_max_delay:
        raise ConfigError(f"{source}: [mqtt] reconnect_min_delay: must not exceed reconnect_max_delay")
    if m.session_expiry < 0:
        raise ConfigError(f"{source}: [mqtt] session_expiry: must be 0 or more, got {m.session_expiry}")
    _check_api(config.api, source)
    _check_export(config, source)
    if config.journal.max_size_mb < 1:
        raise ConfigError(f"{source}: [journal] max_size_mb: at least 1, got {config.journal.max_size_mb}")
    for topic_key in ("request_topic", "response_topic", "josev_request_topic", "josev_response_topic"):
        topic = getattr(m, topic_key)
        if not topic or any(c in topic for c in "+#"):
            raise ConfigError(f"{source}: [mqtt] {topic_key}: must be a plain topic without wildcards, got {topic!r}")


def _check_api(api: ApiConfig, source: str) -> None:
    try:
        host, port = api.host_port
    except ValueError:
        raise ConfigError(f"{source}: [api] listen: expected host:port, got {api.listen!r}") from None
    if not host or not 0 <= port <= 65535:
        raise ConfigError(f"{source}: [api] listen: expected host:port, got {api.listen!r}")


def _check_export(config: Config, source: str) -> None:
    e = config.export
    if not e.enabled:
        return
    if not e.host:
        raise ConfigError(f"{source}: [export] host: required when [export] enabled = true")
    if not config.journal.enabled:
        raise ConfigError(f"{source}: [export] enabled: needs [journal] enabled (the journal is the outbox)")
    if bool(e.tls_cert) != bool(e.tls_key):
        raise ConfigError(f"{source}: [export] tls_cert and tls_key: set both or neither")
    if not e.tls and (e.tls_ca or e.tls_cert):
        raise ConfigError(f"{source}: [export] tls_ca/tls_cert: set tls = true to use them (tls is false)")
    if e.password_file and not e.username:
        raise ConfigError(f"{source}: [export] password_file: needs [export] username")
    if e.reconnect_min_delay > e.reconnect_max_delay:
        raise ConfigError(f"{source}: [export] reconnect_min_delay: must not exceed reconnect_max_delay")
    if e.connect_timeout <= 0:
        raise ConfigError(f"{source}: [export] connect_timeout: must be greater than 0, got {e.connect_timeout!r}")
    if e.max_rows_per_s < 0:
        raise ConfigError(f"{source}: [export] max_rows_per_s: 0 (no limit) or more, got {e.max_rows_per_s!r}")
    if not 1 <= e.max_inflight <= 65535:
        raise ConfigError(f"{source}: [export] max_inflight: must be 1..65535, got {e.max_inflight!r}")
    prefix = e.topic_prefix
    if not prefix or any(c in prefix for c in "+#") or prefix.startswith("/") or prefix.endswith("/"):
        raise ConfigError(f"{source}: [export] topic_prefix: must be a plain topic without wildcards or "
                          f"leading/trailing '/', got {prefix!r}")
    if any(c in config.charger.identity for c in "+#/"):
        raise ConfigError(f"{source}: [charger] identity: must not contain '+', '#' or '/' when [export] is "
                          f"enabled (it is a topic level), got {config.charger.identity!r}")


class DamagedSecret(ConfigError):
    """A secret file whose content cannot be a secret: empty, or not text. A caller that made the file
    itself (the API token) may replace it; for any other it is an error to fix."""


class NotTextSecret(DamagedSecret):
    """A secret file that is not UTF-8 text (random bytes: flash corruption, a wrong file)."""


class EmptySecret(DamagedSecret):
    """A secret file that holds nothing but whitespace (a crash between creating and writing it leaves
    one). It is an error, never an empty password or token: an empty token would match an empty
    `Authorization: Bearer` header, an empty password would be sent to the broker."""


SECRET_FIX = "write the secret into it (one line, mode 0600)"
API_TOKEN_FIX = "delete it and the daemon writes a new token at its next start"


def read_secret(path: str, what: str, *, fix: str = SECRET_FIX) -> str:
    """Read a secret from a file that only its owner may read; never log its content.

    Every failure is a ConfigError naming the key and the file (never a traceback); `fix` says what to
    do about an empty or garbled file, which raises DamagedSecret so a caller that can repair it (the
    API token) may.
    """
    p = Path(path)
    try:
        mode = p.stat().st_mode & 0o777
    except FileNotFoundError:
        raise ConfigError(f"{what}: {p}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"{what}: {p}: cannot read it: {exc.strerror}") from None
    if mode & 0o077:
        raise ConfigError(f"{what}: {p} is readable by group or others (mode {mode:04o}); chmod 600 it")
    try:
        secret = p.read_text(encoding="utf-8").strip()
    except PermissionError:
        raise ConfigError(f"{what}: {p}: permission denied") from None
    except OSError as exc:  # e.g. a directory
        raise ConfigError(f"{what}: {p}: cannot read it: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise NotTextSecret(f"{what}: {p} is not UTF-8 text; {fix}") from None
    if not secret:
        raise EmptySecret(f"{what}: {p} is empty (or only whitespace); {fix}")
    if not secret.isprintable():  # NULs or control characters: flash corruption, not a secret anyone set
        raise NotTextSecret(f"{what}: {p} holds control characters; {fix}")
    return secret


def check_files(config: Config) -> None:
    """What the daemon reads only when it connects: secrets (present, 0600, readable, not empty; never printed)
    and TLS files (readable), so a wrong mode or path shows here rather than as a reconnect loop."""
    e = config.export if config.export.enabled else None
    secrets = [("[mqtt] password_file", config.mqtt.password_file, SECRET_FIX),
               ("[export] password_file", e.password_file if e else None, SECRET_FIX)]
    try:
        token_exists = config.api.enabled and config.api_token_file.exists()
    except OSError as exc:  # e.g. the state directory is not searchable by this user
        raise ConfigError(f"[api] token_file: {config.api_token_file}: cannot check it: {exc.strerror}") from None
    if token_exists:
        secrets.append(("[api] token_file", str(config.api_token_file), API_TOKEN_FIX))
    for what, path, fix in secrets:
        if path:
            read_secret(path, what, fix=fix)  # an empty file is an error too (EmptySecret)
    tls = [("[mqtt] tls_ca", config.mqtt.tls_ca), ("[mqtt] tls_cert", config.mqtt.tls_cert),
           ("[mqtt] tls_key", config.mqtt.tls_key)]
    if e is not None:
        tls += [("[export] tls_ca", e.tls_ca), ("[export] tls_cert", e.tls_cert), ("[export] tls_key", e.tls_key)]
    for what, path in tls:
        if path and not (os.path.isfile(path) and os.access(path, os.R_OK)):
            why = "not readable" if os.path.isfile(path) else "not a file" if os.path.exists(path) else "no such file"
            raise ConfigError(f"{what}: {path}: {why}")
