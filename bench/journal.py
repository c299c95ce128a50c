"""The message journal: query latency at 1,000,000 rows through the real HTTP API, and ingest rate.

    make bench-journal                  # or: .venv/bin/python bench/journal.py [--quick] [--db PATH]

Query latency. A journal of 1,000,000 rows (a realistic mix of message types: mostly answered
get_event_timestamp, unanswered and invalid requests, messages for other services, link and
device-model events) spread over 10 days is filled with JournalStore.insert in batches of 50,000.
The real `ApiServer` + `JournalApi` serve it on loopback in this process (rate limit lifted), and a
keep-alive http.client connection asks each scenario's query >= 500 times: time from sending the
request to the last byte of the body. Interleaved with it, query by query, the floor: the very
same SQL statements (one per message type, as JournalStore issues them) executed directly on a
read-only sqlite3 connection, fetchall, no JSON, no HTTP. Before timing, each scenario checks that
the floor's rows are the API's rows. The database file is read once first, so the OS page cache
holds it as it holds a live journal. Bar (the issue's): p99 <= 20 ms for every filtered page; the
two unfiltered scenarios are reported without a bar.

Ingest rate. Entries/s from the first `Journal.record()` to the commit of the last one
(`Journal.last_id`, via the journal's commit listener), with the default retention policy
(30 days, 32 MiB): once starting from an empty journal (it reaches the bound on the way), once
into a journal already at its size bound, so retention deletes in batches from the first write
(a board's steady state). The producer keeps the queue under half the journal's QUEUE_BYTES so nothing
is dropped, and its time per `record()` (the cost on the response path) is reported. Baseline:
the same rows as pre-built tuples, executemany into a bare table (no index, no AUTOINCREMENT) in
transactions of the journal's BATCH size, same pragmas. Bar: >= 15,000 entries/s in both states,
none dropped (set at 2x the ~7,000 requests/s the bridge answered at d9a0269, each of which is
one entry; ~1.7x the ~9,000/s of 1394a15: docs/performance.md).

Age retention (issue 14). A journal at the default 32 MiB bound as a board writes it: a batch an hour
for 20 days of one host boot, each under its clock mark (core/journal_age). Timed: one age-retention
step (`JournalStore.enforce_age`, which the writer runs every 2 s) when nothing is due, the same right
after a +3 year step of the realtime clock (nothing is due either: before issue 14 this deleted the
journal 500 rows a step), and one step of 500 rows that are due (a 10-day bound). Reported, no bar:
a step runs in the journal thread, and what it costs the answering thread is its GIL time.

Exit status 0 when every bar passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import gc
import http.client
import json
import random
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import common  # bench/common.py; first: it puts this checkout on sys.path
from common import filesystem_of, load_average, percentile
from josev_bridge.adapters.journal_retention import RetentionPolicy
from josev_bridge.adapters.journal_store import JournalStore, page_statement
from josev_bridge.api.journal_api import PATH, JournalApi
from josev_bridge.api.server import ApiServer
from josev_bridge.core.journal_age import ClockReading
from josev_bridge.core.journal_entry import Direction, JournalEntry, NoAnswer
from josev_bridge.core.journal_query import DAY_US, DEFAULT_LIMIT, Position, encode_cursor, parse_query
from josev_bridge.core.timestamps import format_us
from josev_bridge.services import journal as journal_module
from josev_bridge.services.journal import Journal

IDENTITY, FLEET_ID, TOKEN = "bench-charger", 7, "bench-token"
QUERY_BAR_MS = 20.0
INGEST_BAR_PER_S = 15000.0
SPAN_DAYS = 10
WIDE_US = 8 * DAY_US - 3_600_000_000  # a range just under the 8-day limit: 7 days 23 h
DEFAULT_AGE_US = int(30 * 86_400e6)  # [journal] defaults, as the daemon builds its policy
DEFAULT_BYTES = int(32 * 2**20)

# -- a realistic journal ----------------------------------------------------------------------------
EVENT_TYPES = ("TxEventStart", "TxEventStop")
REASONS = ("EVConnected", "Authorized", "PowerPathClosed", "EnergyTransfer", "ParkingBayOccupancy", "DataSigned")
OTHER_NAMES = ("authorize", "transaction_event", "meter_values", "status_notification", "heartbeat")
#: (weight, kind): what a charger's journal holds, roughly; get_event_timestamp dominates.
MIX = [(600, "answered"), (50, "no_event"), (30, "not_supported"), (250, "ignored"), (30, "set_variable"),
       (20, "invalid"), (15, "mcu_link"), (5, "device_model")]


def make_entry(rng: random.Random, kind: str, created_us: int) -> JournalEntry:
    uid = (f"{rng.getrandbits(32):08x}-{rng.getrandbits(16):04x}-4{rng.getrandbits(12):03x}-"
           f"a{rng.getrandbits(12):03x}-{rng.getrandbits(48):012x}")
    request = {"event_type": rng.choice(EVENT_TYPES), "trigger_reason": rng.choice(REASONS)}
    if kind == "answered":
        return JournalEntry(created_us, Direction.IN, "get_event_timestamp", "ocpp/cs", uid, request,
                            {"timestamp": format_us(created_us - rng.randrange(1, 3_600_000_000))},
                            rng.randrange(300, 2000))
    if kind in ("no_event", "not_supported"):
        why = NoAnswer.NO_EVENT_RECORDED if kind == "no_event" else NoAnswer.NOT_SUPPORTED
        return JournalEntry(created_us, Direction.IN, "get_event_timestamp", "ocpp/cs", uid, request, why)
    if kind == "ignored":
        return JournalEntry(created_us, Direction.IN, rng.choice(OTHER_NAMES), "ocpp/cs", uid,
                            {"evse_id": 1, "connector_id": 1}, NoAnswer.IGNORED, note="for another service")
    if kind == "set_variable":
        return JournalEntry(created_us, Direction.IN, "set_variable_validate", "josev/cs", uid,
                            {"component": "JOSEV_CTRLR", "variable": "EnableGetEventTimestampRequest",
                             "value": rng.choice(("true", "false"))}, {"status": "accepted"}, rng.randrange(500, 3000))
    if kind == "invalid":
        return JournalEntry(created_us, Direction.IN, "unknown", "ocpp/cs", None, '{"id": "x", "name": ',
                            NoAnswer.INVALID_MESSAGE, note="malformed JSON: Expecting value: line 1 column 21")
    if kind == "mcu_link":
        return JournalEntry(created_us, Direction.EVENT, "mcu_link",
                            payload={"state": rng.choice(("up", "down")), "mcuBootId": f"{rng.getrandbits(32):08x}",
                                     "firmware": "1.4.2", "lostRecords": 0, "changed": ["state"]})
    return JournalEntry(created_us, Direction.EVENT, "device_model_change",
                        payload={"component": "JOSEV_CTRLR", "variable": "EnableGetEventTimestampRequest",
                                 "attribute": "Actual", "oldValue": "true", "newValue": "false", "source": "local",
                                 "user": "alice"})


def entries(rng: random.Random, n: int, start_us: int, end_us: int) -> Callable[[int, int], list[JournalEntry]]:
    """A chunk maker: rows i..j of n, times spread uniformly over [start_us, end_us], ascending."""
    kinds = [k for _, k in MIX]
    weights = [w for w, _ in MIX]
    step = (end_us - start_us) / n

    def chunk(i: int, j: int) -> list[JournalEntry]:
        return [make_entry(rng, kind, int(start_us + (k + rng.random()) * step))
                for k, kind in zip(range(i, j), rng.choices(kinds, weights, k=j - i))]
    return chunk


def fill(path: Path, rows: int, end_us: int, seed: int = 1) -> float:
    """Create a journal of `rows` rows over SPAN_DAYS days ending at end_us; returns the seconds it took."""
    t0 = time.perf_counter()
    store = JournalStore(path)
    chunk = entries(random.Random(seed), rows, end_us - SPAN_DAYS * DAY_US, end_us)
    for i in range(0, rows, 50_000):
        store.insert(chunk(i, min(rows, i + 50_000)))
        print(f"\r  filling: {min(rows, i + 50_000):,} rows", end="", flush=True)
    store.close()
    print()
    return time.perf_counter() - t0


# -- query latency ---------------------------------------------------------------------------------
@dataclass
class Scenario:
    name: str
    params: Callable[[random.Random], list[tuple[str, str]]]  # the query string, drawn per query
    bar: bool = True  # a filtered page: the bar applies


def floor_statements(params: list[tuple[str, str]], now_us: int) -> list[tuple[str, list]]:
    """The SQL JournalStore.query runs for these parameters, one statement per message type (the store's own)."""
    multi: dict[str, list[str]] = {}
    for key, value in params:
        multi.setdefault(key, []).append(value)
    q = parse_query(multi, now_us)
    return [page_statement(q, t) for t in q.message_types or (None,)]


def floor_query(db: sqlite3.Connection, statements: list[tuple[str, list]], limit: int) -> list[int]:
    rows = []
    for sql, args in statements:
        rows += db.execute(sql, args).fetchall()
    rows.sort(key=lambda r: (r[1], r[0]), reverse=True)
    return [r[0] for r in rows[:limit]]


class Client:
    def __init__(self, host: str, port: int) -> None:
        self.conn = http.client.HTTPConnection(host, port, timeout=30)
        self.headers = {"Authorization": f"Bearer {TOKEN}"}

    def get(self, params: list[tuple[str, str]]) -> tuple[float, int, bytes]:
        target = f"{PATH}?{urlencode(params)}"
        t0 = time.perf_counter()
        self.conn.request("GET", target, headers=self.headers)
        response = self.conn.getresponse()
        body = response.read()
        return time.perf_counter() - t0, response.status, body


def cursor_rows(db: sqlite3.Connection, where: str, args: list, n: int, rng: random.Random) -> list[Position]:
    """n random (created_us, id) positions of rows matching `where`: cursors as a client paging deep has them."""
    ids = [r[0] for r in db.execute(f"SELECT id FROM journal WHERE {where}", args)]
    picked = rng.sample(ids, min(n, len(ids)))
    return [Position(c, i) for i, c in (db.execute("SELECT id, created_us FROM journal WHERE id = ?", (p,)).fetchone()
                                         for p in picked)]


def scenarios(db: sqlite3.Connection, end_us: int, rng: random.Random) -> list[Scenario]:
    wide_start = end_us - WIDE_US
    deep = [wide_start, wide_start + WIDE_US // 4]  # the oldest quarter of a 7 d 23 h range
    get_cursors = cursor_rows(db, "message_type = 'get_event_timestamp' AND created_us BETWEEN ? AND ?", deep, 400, rng)
    any_cursors = cursor_rows(db, "created_us BETWEEN ? AND ?", deep, 400, rng)
    wide = [("startTimestamp", format_us(wide_start)), ("endTimestamp", format_us(end_us))]
    cid = [("chargerId", IDENTITY)]

    def day_window(r: random.Random) -> list[tuple[str, str]]:  # a random day (default 24 h range) of the 10
        return [("endTimestamp", format_us(r.randrange(end_us - (SPAN_DAYS - 1) * DAY_US, end_us)))]

    return [
        Scenario("1 type, newest page (all defaults)", lambda r: cid + [("messageType", "get_event_timestamp")]),
        Scenario("1 type, a random day", lambda r: cid + [("messageType", "get_event_timestamp")] + day_window(r)),
        Scenario("2 types (messageType[]), a random day",
                 lambda r: cid + [("messageType[]", "get_event_timestamp"), ("messageType[]", "set_variable_validate")]
                 + day_window(r)),
        Scenario("1 type, 7d23h range, cursor deep in it",
                 lambda r: cid + [("messageType", "get_event_timestamp")] + wide
                 + [("nextPageCursor", encode_cursor(r.choice(get_cursors)))]),
        Scenario("2 types, common + rare, 7d23h, deep cursor",
                 lambda r: cid + [("messageType[]", "get_event_timestamp"), ("messageType[]", "device_model_change")]
                 + wide + [("nextPageCursor", encode_cursor(r.choice(get_cursors)))]),
        Scenario("rare type only (device_model_change), 7d23h", lambda r: cid + [("messageType", "device_model_change")]
                 + wide),
        Scenario("no type filter, 7d23h, deep cursor",
                 lambda r: cid + wide + [("nextPageCursor", encode_cursor(r.choice(any_cursors)))], bar=False),
        Scenario("no type filter, limit 500 (largest page)", lambda r: cid + [("limit", "500")], bar=False),
    ]


@dataclass
class QueryResult:
    scenario: Scenario
    api_ms: list[float]
    floor_ms: list[float]
    rows_per_page: float

    @property
    def passed(self) -> bool:
        return percentile(sorted(self.api_ms), 99) <= QUERY_BAR_MS


def run_queries(db_path: Path, end_us: int, n: int, warmup: int) -> list[QueryResult]:
    api = JournalApi(db_path, IDENTITY, FLEET_ID, clock_us=lambda: end_us)
    server = ApiServer("127.0.0.1", 0, TOKEN, {PATH: api}, rate_per_s=1e9)
    server.start()
    floor_db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, check_same_thread=False)
    rng = random.Random(2)
    results = []
    try:
        client = Client(*server.address)
        for sc in scenarios(floor_db, end_us, rng):
            # the same rows from both, or the floor measures something else
            for _ in range(3):
                params = sc.params(rng)
                _, status, body = client.get(params)
                assert status == 200, (sc.name, status, body[:300])
                page = json.loads(body)
                limit = int(dict(params).get("limit", DEFAULT_LIMIT))
                floor_ids = floor_query(floor_db, floor_statements(params, end_us), limit)
                assert [r["id"] for r in page["data"]] == floor_ids, sc.name
            for _ in range(warmup):
                params = sc.params(rng)
                client.get(params)
                floor_query(floor_db, floor_statements(params, end_us), int(dict(params).get("limit", DEFAULT_LIMIT)))
            api_ms, floor_ms, rows = [], [], 0
            gc.collect()
            gc.disable()
            try:
                for i in range(n):
                    params = sc.params(rng)
                    statements = floor_statements(params, end_us)
                    limit = int(dict(params).get("limit", DEFAULT_LIMIT))
                    for step in ("api", "floor") if i % 2 == 0 else ("floor", "api"):  # alternating order
                        if step == "api":
                            seconds, status, body = client.get(params)
                            assert status == 200, (sc.name, status, body[:300])
                            api_ms.append(seconds * 1000)
                            rows += body.count(b'"ocppChargerIdentity"')
                        else:
                            t0 = time.perf_counter()
                            floor_query(floor_db, statements, limit)
                            floor_ms.append((time.perf_counter() - t0) * 1000)
            finally:
                gc.enable()
            results.append(QueryResult(sc, api_ms, floor_ms, rows / n))
            r = results[-1]
            print(f"  {sc.name}: API p50 {percentile(sorted(r.api_ms), 50):.2f} ms p99 "
                  f"{percentile(sorted(r.api_ms), 99):.2f} ms; floor p50 {percentile(sorted(r.floor_ms), 50):.2f} ms "
                  f"p99 {percentile(sorted(r.floor_ms), 99):.2f} ms", flush=True)
        client.conn.close()
    finally:
        server.stop()
        api.close()
        floor_db.close()
    return results


def explain(db_path: Path, end_us: int) -> list[str]:
    """EXPLAIN QUERY PLAN of the statements behind the filtered deep-cursor scenario (for the record)."""
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    params = [("chargerId", IDENTITY), ("messageType[]", "get_event_timestamp"),
              ("messageType[]", "device_model_change"), ("startTimestamp", format_us(end_us - WIDE_US)),
              ("endTimestamp", format_us(end_us)),
              ("nextPageCursor", encode_cursor(Position(end_us - WIDE_US // 2, 10**6 // 2)))]
    out = []
    for sql, args in floor_statements(params, end_us):
        plan = db.execute("EXPLAIN QUERY PLAN " + sql, args).fetchall()
        out.append(f"{sql.split('WHERE', 1)[1].strip()}\n      " + "\n      ".join(p[-1] for p in plan))
    db.close()
    return out


# -- ingest ------------------------------------------------------------------------------------------
@dataclass
class IngestResult:
    label: str
    entries: int
    seconds: float
    record_us: float | None = None  # mean time of one record() call (the producer's side)
    dropped: int = 0
    retained_away: int = 0
    bar: bool = True

    @property
    def rate(self) -> float:
        return self.entries / self.seconds

    @property
    def passed(self) -> bool:
        return not self.bar or (self.rate >= INGEST_BAR_PER_S and self.dropped == 0)


def ingest_journal(path: Path, batch: list[JournalEntry], label: str) -> IngestResult:
    """Time Journal.record() of every entry until the last one is committed."""
    journal = Journal(path, RetentionPolicy(DEFAULT_AGE_US, DEFAULT_BYTES))
    target = journal.last_id + len(batch)
    done = threading.Event()
    journal.add_listener(lambda last_id: done.set() if last_id >= target else None)
    journal.start()
    chunk = 1000
    high_water = journal_module.QUEUE_BYTES // 2  # bytes: room for the next chunk, so the journal drops nothing
    record_s = 0.0
    gc.collect()
    t0 = time.perf_counter()
    for i in range(0, len(batch), chunk):
        while journal.queued_bytes > high_water:  # a producer faster than any real one: wait for the writer
            time.sleep(0.001)
        t1 = time.perf_counter()
        for entry in batch[i:i + chunk]:
            journal.record(entry)
        record_s += time.perf_counter() - t1
    deadline = time.monotonic() + 600
    while not done.wait(0.2):
        if journal.counters.dropped or journal.counters.write_errors or time.monotonic() > deadline:
            journal.stop()
            raise RuntimeError(f"{label}: last entry not committed (last_id {journal.last_id} < {target}, "
                               f"{journal.counters})")
    seconds = time.perf_counter() - t0
    counters = journal.counters
    journal.stop()
    return IngestResult(label, len(batch), seconds, record_s / len(batch) * 1e6, counters.dropped,
                        counters.retained_away)


def ingest_baseline(path: Path, batch: list[JournalEntry]) -> IngestResult:
    """The same rows, pre-built, executemany into a bare table in BATCH-sized transactions."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE bare (id INTEGER PRIMARY KEY, created_us INTEGER, direction TEXT, message_type TEXT, "
               "topic TEXT, correlation_id TEXT, payload TEXT, response TEXT, latency_us INTEGER, note TEXT)")
    rows = [(e.created_us, e.direction.value, e.message_type, e.topic, e.correlation_id,
             json.dumps(e.payload), json.dumps(e.response.value if isinstance(e.response, NoAnswer) else e.response),
             e.latency_us, e.note) for e in batch]
    size = journal_module.BATCH
    t0 = time.perf_counter()
    for i in range(0, len(rows), size):
        db.execute("BEGIN IMMEDIATE")
        db.executemany("INSERT INTO bare (created_us, direction, message_type, topic, correlation_id, payload, "
                       "response, latency_us, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows[i:i + size])
        db.execute("COMMIT")
    seconds = time.perf_counter() - t0
    db.close()
    return IngestResult("baseline: executemany, bare table", len(rows), seconds, bar=False)


def run_ingest(workdir: Path, n: int) -> list[IngestResult]:
    now_us = time.time_ns() // 1000
    batch = entries(random.Random(3), n, now_us - 3_600_000_000, now_us)(0, n)
    results = [ingest_baseline(workdir / "bare.sqlite", batch)]
    print(f"  {results[-1].label}: {results[-1].rate:,.0f} entries/s", flush=True)
    results.append(ingest_journal(workdir / "empty.sqlite", batch, "Journal.record, starting empty"))
    print(f"  {results[-1].label}: {results[-1].rate:,.0f} entries/s", flush=True)
    # a journal at its size bound: older rows (still within the age bound) up to just under 90 % of 32 MiB
    full = workdir / "full.sqlite"
    store = JournalStore(full)
    chunk = entries(random.Random(4), 10**7, now_us - 20 * DAY_US, now_us - DAY_US)
    i = 0
    while store.used_bytes() < DEFAULT_BYTES * 0.88:
        store.insert(chunk(i, i + 2000))
        i += 2000
    store.close()
    results.append(ingest_journal(full, batch, "Journal.record, at the 32 MiB bound"))
    print(f"  {results[-1].label}: {results[-1].rate:,.0f} entries/s ({results[-1].retained_away:,} retained away)",
          flush=True)
    return results


# -- age retention -----------------------------------------------------------------------------------
HOUR_US = 3_600_000_000
RETENTION_STEPS = 300  # timed steps per case (each a fresh statement, as every 2 s on a board)


@dataclass
class RetentionResult:
    label: str
    ms: list[float]
    deleted: int


def marked_journal(path: Path, now_us: int) -> tuple[int, int]:
    """A journal at just under 90 % of the default bound: a batch an hour for 20 days of one host boot
    (created_us and boottime agree: the clock was right), each under its clock mark. Returns (rows,
    the boottime now)."""
    store = JournalStore(path)
    hours, policy = 20 * 24, RetentionPolicy(DEFAULT_AGE_US, DEFAULT_BYTES)
    boot_now = (hours + 1) * HOUR_US
    per_hour = 250
    chunk = entries(random.Random(5), hours * per_hour, now_us - boot_now + HOUR_US, now_us - HOUR_US)
    rows = 0
    for hour in range(hours):
        if store.used_bytes() >= DEFAULT_BYTES * 0.88:
            break
        bt = (hour + 1) * HOUR_US
        store.mark_writes(ClockReading("bench-boot", bt, now_us - boot_now + bt, True), policy.span_us)
        store.insert(chunk(rows, rows + per_hour))
        rows += per_hour
    store.close()
    return rows, boot_now


def time_steps(path: Path, policy: RetentionPolicy, now: ClockReading, label: str) -> RetentionResult:
    """RETENTION_STEPS steps timed, or, when rows are due, the steps of a full batch each."""
    store = JournalStore(path)
    times, deleted = [], 0
    for _ in range(RETENTION_STEPS):
        t0 = time.perf_counter()
        step = store.enforce_age(policy, now)
        elapsed = (time.perf_counter() - t0) * 1000
        if deleted and step < policy.batch_rows:
            break  # what was due is gone
        times.append(elapsed)
        deleted += step
    store.close()
    return RetentionResult(label, times, deleted)


def run_retention(workdir: Path) -> tuple[list[RetentionResult], int, list[str]]:
    now_us = time.time_ns() // 1000
    path = workdir / "retention.sqlite"
    rows, boot_now = marked_journal(path, now_us)
    right = ClockReading("bench-boot", boot_now, now_us, True)
    stepped = ClockReading("bench-boot", boot_now, now_us + 3 * 365 * DAY_US, True)
    results = [time_steps(path, RetentionPolicy(DEFAULT_AGE_US, DEFAULT_BYTES), right, "nothing due (30 days)"),
               time_steps(path, RetentionPolicy(DEFAULT_AGE_US, DEFAULT_BYTES), stepped,
                          "nothing due, after a +3 y step of realtime"),
               time_steps(path, RetentionPolicy(10 * DAY_US, DEFAULT_BYTES), right, "rows due (10 days): 500 a step")]
    db = sqlite3.connect(path)
    plan = [row[-1] for row in db.execute(
        "EXPLAIN QUERY PLAN DELETE FROM journal WHERE id IN (SELECT id FROM journal WHERE id >= ? AND id < ? "
        "ORDER BY id LIMIT ?)", (1, 10**6, 500))]
    db.close()
    for r in results:
        print(f"  {r.label}: p50 {percentile(sorted(r.ms), 50):.3f} ms, {r.deleted:,} deleted", flush=True)
    return results, rows, plan


# -- report -----------------------------------------------------------------------------------------
def machine(db_dir: Path) -> dict[str, str]:
    return common.machine(sqlite=sqlite3.sqlite_version,
                          **{"database directory": f"{db_dir} ({filesystem_of(db_dir)})"})


def report(facts: dict[str, str], rows: int, fill_s: float | None, db_bytes: int, queries: list[QueryResult],
           ingest: list[IngestResult], plans: list[str],
           retention: tuple[list[RetentionResult], int, list[str]]) -> bool:
    print()
    for k, v in facts.items():
        print(f"{k:>20}: {v}")
    filled = f"filled in {fill_s:.1f} s" if fill_s is not None else "reused"
    print(f"\nQuery latency, {rows:,} rows over {SPAN_DAYS} days ({db_bytes / 2**20:,.0f} MiB, {filled}); "
          f"{len(queries[0].api_ms)} queries per scenario, API and floor interleaved; times in ms\n")
    print("| scenario | rows/page | floor p50 | floor p99 | API p50 | API p99 | API max | bar | result |")
    print("|---|---|---|---|---|---|---|---|---|")
    ok = True
    for r in queries:
        a, f = sorted(r.api_ms), sorted(r.floor_ms)
        verdict = ("PASS" if r.passed else "FAIL") if r.scenario.bar else "(info)"
        ok &= r.passed or not r.scenario.bar
        print(f"| {r.scenario.name} | {r.rows_per_page:.0f} | {percentile(f, 50):.2f} | {percentile(f, 99):.2f} | "
              f"{percentile(a, 50):.2f} | {percentile(a, 99):.2f} | {a[-1]:.2f} | "
              f"{f'p99 <= {QUERY_BAR_MS:g}' if r.scenario.bar else '-'} | {verdict} |")
    print("\nIngest\n")
    print("| what | entries | seconds | entries/s | record() mean | dropped | retained away | bar | result |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in ingest:
        verdict = ("PASS" if r.passed else "FAIL") if r.bar else "(floor)"
        ok &= r.passed
        rec = f"{r.record_us:.2f} µs" if r.record_us is not None else "-"
        bar = f">= {INGEST_BAR_PER_S:,.0f}/s, 0 dropped" if r.bar else "-"
        print(f"| {r.label} | {r.entries:,} | {r.seconds:.2f} | {r.rate:,.0f} | {rec} | {r.dropped} | "
              f"{r.retained_away:,} | {bar} | {verdict} |")
    print("\nEXPLAIN QUERY PLAN of a 2-type deep-cursor page (one index range per type, merged in Python):")
    for p in plans:
        print("  " + p)
    steps, retention_rows, retention_plan = retention
    print(f"\nAge retention: one step on a journal of {retention_rows:,} rows (32 MiB bound, 20 days, a mark an "
          f"hour); {RETENTION_STEPS} steps per case; times in ms\n")
    print("| case | steps | p50 | p99 | max | rows deleted |")
    print("|---|---|---|---|---|---|")
    for r in steps:
        t = sorted(r.ms)
        print(f"| {r.label} | {len(t)} | {percentile(t, 50):.3f} | {percentile(t, 99):.3f} | {t[-1]:.3f} | "
              f"{r.deleted:,} |")
    print("EXPLAIN QUERY PLAN of the age step's DELETE:\n      " + "\n      ".join(retention_plan))
    print(f"\nverdict: {'ALL BARS PASS' if ok else 'A BAR FAILED'}")
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="journal rows for the query bench")
    ap.add_argument("--queries", type=int, default=1000, help="timed queries per scenario (>= 500 for the bar)")
    ap.add_argument("--ingest", type=int, default=200_000, help="entries per ingest run")
    ap.add_argument("--db", type=Path, help="keep the filled journal here and reuse it when it has --rows rows")
    ap.add_argument("--dir", type=Path, help="where the databases go (default: a temporary directory)")
    ap.add_argument("--quick", action="store_true", help="100,000 rows, 500 queries, 50,000 entries: a smoke run")
    args = ap.parse_args()
    common.exit_on_sigterm()  # `kill`, `timeout`: the work directory is still removed
    if args.quick:
        args.rows, args.queries, args.ingest = 100_000, 500, 50_000
    workdir = Path(tempfile.mkdtemp(prefix="josev-bench-journal-", dir=args.dir))
    try:
        db_path = args.db or workdir / "journal.sqlite"
        end_us = (time.time_ns() // 1000) // 1_000_000 * 1_000_000
        fill_s = None
        meta = db_path.with_suffix(".end_us")
        if args.db and db_path.exists() and meta.exists():
            with _ro(db_path) as store:
                count = store.count()
            if count == args.rows:
                end_us = int(meta.read_text())
            else:
                db_path.unlink()
                for suffix in ("-wal", "-shm"):
                    Path(str(db_path) + suffix).unlink(missing_ok=True)
        if not db_path.exists():
            print(f"filling {args.rows:,} rows into {db_path}")
            fill_s = fill(db_path, args.rows, end_us)
            meta.write_text(str(end_us))
        facts = machine(db_path.parent)
        with db_path.open("rb") as fh:  # the file read once, as a board's live journal is: in the page cache
            while fh.read(1 << 20):
                pass
        print(f"query latency ({args.queries} per scenario)")
        queries = run_queries(db_path, end_us, args.queries, warmup=50)
        plans = explain(db_path, end_us)
        print(f"ingest ({args.ingest:,} entries per run)")
        ingest = run_ingest(workdir, args.ingest)
        print("age retention")
        retention = run_retention(workdir)
        facts["load average"] += f" (start) / {load_average()} (end)"
        return 0 if report(facts, args.rows, fill_s, db_path.stat().st_size, queries, ingest, plans, retention) else 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


class _ro:
    """A read-only JournalStore as a context manager."""

    def __init__(self, path: Path) -> None:
        self.store = JournalStore(path, readonly=True)

    def __enter__(self) -> JournalStore:
        return self.store

    def __exit__(self, *exc) -> None:
        self.store.close()


if __name__ == "__main__":
    sys.exit(main())
