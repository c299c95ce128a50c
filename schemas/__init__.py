"""JSON Schemas of josev-bridge messages, installed as package data (josev_bridge.schema_files)."""
