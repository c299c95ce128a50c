"""The HTTP API: the loopback server (server.py) and its routes (journal_api, alerts_api)."""
