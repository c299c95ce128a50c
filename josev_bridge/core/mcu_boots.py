"""What the bridge keeps about the MCU's boots beyond the seq numbering: how far the MCU says it has
sent, when the bridge last knew every level of a boot, and what a re-reported level means after a
reboot. Pure: services/mcu_ingest feeds it under its lock and logs the lines it returns.

docs/serial-protocol.md §4.3, §4.6 and §4.7:

- The MCU's KEEPALIVE (protocol version 2) names its boot and one past the last record it put on the
  line. More than the bridge has received means a record was lost on the line with no later record
  to reveal it (the last record of a session): the link asks for the replay.
- The bridge knew every level of a boot up to the later of: the stamp of the last record it applied
  (it holds every record before it: they are applied in seq order, and stamped in that order), and
  the last KEEPALIVE that showed nothing missing. At a new boot every known level becomes
  unconfirmed (EdgeStore.begin_reboot), and that moment, mapped through the old boot's clock, is the
  earliest a level that changed across the reboot can have changed.
- A LEVEL with another level than the one known is an edge: at `time_us - age_us` when the MCU knew
  the age; else in the middle of [that moment, the report] when both are known and at most
  BRACKET_MAX_US apart (the bound says how wide); else at an unknown time (never invented).
- An MCU of protocol version 1 re-reports its 1s as SIGNALs: the first one of a signal in the new
  boot, with the level the bridge knew, is taken for the re-report it almost surely is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .conditions import SIGNAL_CONDITION, LevelRecord, SignalRecord
from .edge_store import ConditionState, EdgeStore, EdgeTime, LevelOutcome
from .timestamps import format_us

#: The widest interval a level that changed across a reboot is answered from (its middle, with half
#: its width in the bound): an MCU reboot. Longer (the MCU or the board was off) says too little.
BRACKET_MAX_US = 10_000_000

#: MCU clock reading -> (µs on the edge store's time line, error bound µs) through a boot's clock
#: mapping. The ingest's store keeps host monotonic time (UTC = it + the realtime offset when
#: answering, core/host_time); the `offset_us` arguments below only date the notes and log lines.
Mapper = Callable[[int], tuple[int, int]]


@dataclass
class BootTracker:
    """The ingest's memory of the MCU's boots beyond the seq numbering (core/link_sequence): what the
    MCU says it has sent, how long the bridge knew every level, and the MCU's protocol version.
    `bridge_version` is the protocol the bridge speaks (protocol/framing)."""

    bridge_version: int
    sent: tuple[int, int] | None = None  # (boot_id, next_seq) of the MCU's last KEEPALIVE with ring fields
    known_until_mcu_us: int | None = None  # MCU clock: this boot had sent nothing the bridge lacked until then
    reboot_after_us: int | None = None  # the store's time line: that moment of the boot before the current one
    protocol_version: int | None = None  # the MCU's, from its last HELLO

    @property
    def reduced_guarantees(self) -> bool:
        """The MCU speaks a protocol older than the bridge's (§4.7): for the status."""
        return self.protocol_version is not None and self.protocol_version < self.bridge_version

    def missing(self, boot_id: int | None, last_seq: int) -> bool:
        """True while the MCU's KEEPALIVE says it sent what the bridge has not received (or speaks of
        a boot whose HELLO the bridge never got)."""
        sent = self.sent
        return sent is not None and (sent[0] != boot_id or sent[1] > last_seq + 1)

    def applied(self, mcu_us: int) -> None:
        """A record of the current boot stamped `mcu_us` was applied (in seq order)."""
        if mcu_us and (self.known_until_mcu_us is None or mcu_us > self.known_until_mcu_us):
            self.known_until_mcu_us = mcu_us

    def on_keepalive(self, sent_boot: int, next_seq: int, time_us: int, boot_id: int | None,
                     last_seq: int) -> str | None:
        """An MCU KEEPALIVE's ring fields (and its time, on the record clock). Returns the line to log
        when it newly shows records or a HELLO missing."""
        was_missing = self.missing(boot_id, last_seq)
        self.sent = sent_boot, next_seq
        if self.missing(boot_id, last_seq):
            return None if was_missing else (
                f"MCU KEEPALIVE: boot {sent_boot:08x} has sent up to seq {next_seq - 1}, the bridge has boot "
                f"{'none' if boot_id is None else f'{boot_id:08x}'} up to seq {last_seq}: a record (or a HELLO) "
                "was lost on the line; asking for the replay")
        self.applied(time_us)  # nothing lacked up to it
        return None

    def on_hello(self, version: int, new_boot: int, old_boot: int | None, rebooted: bool, store: EdgeStore,
                 old_clock: Mapper | None) -> str | None:
        """A HELLO; on a new boot, every known level becomes unconfirmed. Returns the reboot's label.
        `old_clock` maps the old boot's clock (None: never mapped)."""
        self.protocol_version = version
        self.sent = None  # whatever it said is answered by the replay this HELLO starts
        if not rebooted:
            return None
        known_until, self.known_until_mcu_us = self.known_until_mcu_us, None
        self.reboot_after_us = None
        if known_until is not None and old_clock is not None:
            at_us, bound_us = old_clock(known_until)
            self.reboot_after_us = at_us - bound_us  # the earliest it can have been: errs wide
        if old_boot is None:
            return None  # the bridge followed no boot before: it knows no level to confirm
        label = f"boot {old_boot:08x} -> {new_boot:08x}"
        if version < self.bridge_version:
            label += f" (MCU protocol v{version})"
        store.begin_reboot(label)
        return label

    def is_v1_rereport(self, record: SignalRecord, store: EdgeStore) -> bool:
        """A version-1 MCU's SIGNAL that is most likely its re-report after boot (§4.7): a 1, the level
        the bridge knew, for a signal the new boot has not reported yet."""
        if not self.reduced_guarantees or not record.state:
            return False
        state = store.state(record.evse_id, SIGNAL_CONDITION[record.signal])
        return state is not None and state.unconfirmed is not None and state.active

    def apply_level(self, record: LevelRecord, store: EdgeStore, to_store: Mapper,
                    offset_us: int = 0) -> tuple[LevelOutcome, EdgeTime]:
        """A LEVEL into the edge store: kept if unchanged, else an edge at the time it implies."""
        report = to_store(record.time_us)
        aged = to_store(record.time_us - record.age_us) if record.age_us else None
        when = self.level_edge_time(store.state(record.evse_id, SIGNAL_CONDITION[record.signal]), report, aged,
                                    record.age_us, offset_us)
        return store.apply_level(record.evse_id, record.signal, record.state, when), when

    def level_edge_time(self, state: ConditionState | None, report: tuple[int, int],
                        aged: tuple[int, int] | None, age_us: int | None, offset_us: int = 0) -> EdgeTime:
        """The time of the edge a LEVEL implies if its level is not the one the bridge knew.

        `report` and `aged`: (store time, bound) of the report's `time_us` and of `time_us - age_us`;
        `offset_us` turns store times into UTC for the note.
        """

        def utc(time_us: int) -> str:
            return format_us(time_us + offset_us)

        report_us, report_bound = report
        if aged is not None and age_us is not None:
            return EdgeTime(aged[0], aged[1], f"time from the MCU's level report: {age_us / 1e6:.3f} s old at "
                                              f"{utc(report_us)}")
        label = state.unconfirmed if state is not None else None
        after = self.reboot_after_us
        latest = report_us + report_bound
        if label is None:
            why = "a level the bridge never knew" if state is None or not state.known else \
                "another level than the one the bridge knew, outside a reboot (a transition it missed)"
            return EdgeTime(report_us, None, f"the MCU reported {why}, without its time: not an edge the bridge "
                                             "can timestamp", True)
        if after is None:
            return EdgeTime(report_us, None, f"changed at an unknown time while the MCU rebooted ({label}): "
                                             "the bridge did not know when it last held every record of the "
                                             "old boot", True)
        if latest - after > BRACKET_MAX_US:
            return EdgeTime(report_us, None, f"changed at an unknown time while the MCU rebooted ({label}), "
                                             f"between {utc(after)} and {utc(report_us)}", True)
        middle, half = (after + latest) // 2, (max(latest - after, 0) + 1) // 2
        return EdgeTime(middle, half, f"inferred: changed while the MCU rebooted ({label}), between "
                                      f"{utc(after)} and {utc(report_us)}")


def version_consequence(mcu_version: int, bridge_version: int) -> str:
    """What an MCU of another protocol version costs, for the line logged when its boot is first seen."""
    if mcu_version < bridge_version:
        return ("accepted with reduced guarantees (docs/serial-protocol.md 4.7): after its reboots a level that "
                "changed is timed at its re-report and one that fell is not reported, and a lost last record "
                "waits for the next record")
    return "record types this bridge does not know are skipped and counted"


def level_outcome_lines(evse_id: int, outcome: LevelOutcome, when: EdgeTime, store: EdgeStore,
                        offset_us: int = 0) -> tuple[list[str], list[str]]:
    """The technician's lines for a level report: (INFO) each edge kept across the reboot, continuity
    assumed; (WARNING) each edge whose time is unknown. Timed edges are logged like any other."""
    kept_lines = []
    for condition in outcome.kept:
        kept = store.state(evse_id, condition)
        if kept is not None:
            event, time_us = ("TxEventStart", kept.rise_utc_us(offset_us)) if kept.active else \
                ("TxEventStop", kept.fall_utc_us(offset_us))
            kept_lines.append(f"EVSE {evse_id} {condition.value} still {'true' if kept.active else 'false'} after "
                              f"the MCU reboot ({outcome.label}): continuity assumed, {event} kept at "
                              f"{'-' if time_us is None else format_us(time_us)}")
    untimed = [f"EVSE {edge.evse_id} {edge.condition.value} {edge.event_type.value} at an unknown time: "
               f"{when.note}; it will not be answered" for edge in outcome.edges] if when.untimed else []
    return kept_lines, untimed
