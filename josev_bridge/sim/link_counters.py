"""What the sim's serial side counts (`GET /ocpp/status` -> link.counters): the line as the MCU sees it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class LinkCounters:
    frames_in: int = 0
    bad_records: int = 0
    unknown_frames: int = 0
    host_hellos: int = 0
    acks: int = 0
    foreign_acks: int = 0  # ACKs naming a boot id we hold no records of
    frames_out: int = 0
    frames_dropped: int = 0  # outbox full or write timed out; records among them remain replayable
    clock_probes: int = 0
    clock_replies: int = 0  # queued on the priority lane
    clock_replies_suppressed: int = 0  # probes received while silent or unplugged: not answered
    noise_bytes: int = 0
    silences: int = 0
    reboots: int = 0
    unplugs: int = 0
    replugs: int = 0
    frames_lost_unplugged: int = 0  # frames that had no pty to go to
