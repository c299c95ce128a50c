"""Thin adapters around the pure core: MQTT, serial, SQLite, files, systemd."""
