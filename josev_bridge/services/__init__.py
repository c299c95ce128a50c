"""The long-running parts: each owns threads or state over the daemon's life (MCU ingest,
get_event_timestamp, device-model sync, alerts, journal, journal export)."""
