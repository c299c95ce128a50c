"""Device-model component definitions, installed as package data (josev_bridge.device_model_files)."""
