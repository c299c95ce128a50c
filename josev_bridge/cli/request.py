"""`josev-bridge request`: play the OCPP service once over MQTT and print the answer."""

from __future__ import annotations

import argparse
import json
import sys

from ..config import load
from .common import EXIT_FAIL, EXIT_OK


def get_event_timestamp(args: argparse.Namespace) -> int:
    from ..request_client import RequestClient

    config = load(args.config)
    data: dict = {"event_type": args.event_type, "trigger_reason": args.trigger_reason}
    if args.evse_id is not None:
        data["evse_id"] = args.evse_id
    try:
        with RequestClient(config.mqtt) as client:
            reply = client.send("get_event_timestamp", data, timeout=args.timeout)
    except (OSError, TimeoutError) as exc:
        print(f"josev-bridge: cannot reach the broker at {config.mqtt.host}:{config.mqtt.port}: {exc}", file=sys.stderr)
        return EXIT_FAIL
    print(json.dumps(reply.request))
    if reply.response is None:
        print(f"no answer within {args.timeout:g} s. The bridge stays silent when "
              "JOSEV_CTRLR.EnableGetEventTimestampRequest is false or the MCU never reported that event; "
              "see `journalctl -u josev-bridge`.", file=sys.stderr)
        return EXIT_FAIL
    print(json.dumps(reply.response))
    print(f"answered in {reply.round_trip_ms:.2f} ms", file=sys.stderr)
    return EXIT_OK
