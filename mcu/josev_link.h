/*
 * josev_link: MCU side of the josev-bridge serial protocol, version 2 (docs/serial-protocol.md).
 *
 * Reference implementation for firmware integrators: C99, no heap, no global state, no library
 * functions at all (only <stdint.h>, <stddef.h>, <stdbool.h>); every buffer is the caller's.
 * Integers on the wire are packed byte by byte, so the code is independent of the CPU's
 * endianness and alignment.
 *
 * tests/mcu/test_c_reference.py compiles this file and checks it against the document's test
 * vectors and against the Python decoder the host runs.
 */
#ifndef JOSEV_LINK_H
#define JOSEV_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define JL_FRAME_FORMAT 1u      /* the first byte of every frame: its layout, unchanged since version 1 */
#define JL_PROTOCOL_VERSION 2u  /* what HELLO announces: 2 added LEVEL and KEEPALIVE's ring fields */
#define JL_MAX_FRAME 512u      /* decoded bytes, header and CRC included (format .. crc) */
#define JL_FRAME_OVERHEAD 10u  /* format u8, type u8, seq u32, crc u32 */
#define JL_MAX_BODY (JL_MAX_FRAME - JL_FRAME_OVERHEAD)

/* Worst-case COBS output for n input bytes: one code byte per started run of 254 bytes. */
#define JL_COBS_MAX_ENCODED(n) ((n) + (n) / 254u + 1u)
/* Worst-case bytes on the line for a frame with a body of n bytes, delimiter included. */
#define JL_LINE_MAX(body_len) (JL_COBS_MAX_ENCODED(JL_FRAME_OVERHEAD + (body_len)) + 1u)

#define JL_SIGNAL_BODY 12u
#define JL_LEVEL_BODY 20u
#define JL_EV_STATUS_BODY 29u
#define JL_FAULT_BODY(text_len) (15u + (text_len)) /* head, three length prefixes, the strings' bytes */
#define JL_KEEPALIVE_BODY 16u      /* MCU -> host: time_us, boot_id, next_seq */
#define JL_HOST_KEEPALIVE_BODY 8u  /* host -> MCU: time_us */
#define JL_HELLO_BODY(fw_len) (14u + (fw_len)) /* head, firmware, oldest_seq, next_seq */
#define JL_CLOCK_REPLY_BODY 12u
#define JL_ACK_BODY 8u
#define JL_HOST_HELLO_BODY 1u
#define JL_CLOCK_PROBE_BODY 4u
#define JL_SIGNAL_LINE_MAX JL_LINE_MAX(JL_SIGNAL_BODY)              /* 24 */
#define JL_LEVEL_LINE_MAX JL_LINE_MAX(JL_LEVEL_BODY)                /* 32 */
#define JL_EV_STATUS_LINE_MAX JL_LINE_MAX(JL_EV_STATUS_BODY)        /* 41 */
#define JL_FAULT_LINE_MAX JL_LINE_MAX(JL_MAX_BODY)                  /* 516: info is cut to fit a frame */
#define JL_RECORD_LINE_MAX JL_FAULT_LINE_MAX                        /* any record of the ring */
#define JL_KEEPALIVE_LINE_MAX JL_LINE_MAX(JL_KEEPALIVE_BODY)        /* 28 */
#define JL_CLOCK_REPLY_LINE_MAX JL_LINE_MAX(JL_CLOCK_REPLY_BODY)    /* 24 */
#define JL_HELLO_LINE_MAX(fw_len) JL_LINE_MAX(JL_HELLO_BODY(fw_len)) /* fw_len <= 255 */

/* The largest host->MCU frame of versions 1 and 2 (ACK and KEEPALIVE: 8-byte bodies; CLOCK_PROBE 4,
 * HOST_HELLO 1; josev_link.c checks this at compile time). A decoder buffer of this size parses
 * all of them; larger frames (types a newer host may add, which this MCU would skip anyway) then
 * count as oversize. A buffer of JL_MAX_FRAME accepts everything the protocol allows. */
#define JL_HOST_FRAME_MAX (JL_FRAME_OVERHEAD + 8u)

enum jl_type {
    JL_TYPE_HELLO = 0x01,       /* MCU -> host */
    JL_TYPE_SIGNAL = 0x02,      /* MCU -> host */
    JL_TYPE_KEEPALIVE = 0x03,   /* both */
    JL_TYPE_ACK = 0x04,         /* host -> MCU */
    JL_TYPE_HOST_HELLO = 0x05,  /* host -> MCU */
    JL_TYPE_CLOCK_PROBE = 0x06, /* host -> MCU: answer at once with CLOCK_REPLY */
    JL_TYPE_CLOCK_REPLY = 0x07, /* MCU -> host */
    JL_TYPE_FAULT = 0x08,       /* MCU -> host, a record like SIGNAL */
    JL_TYPE_EV_STATUS = 0x09,   /* MCU -> host, a record like SIGNAL */
    JL_TYPE_LEVEL = 0x0A        /* MCU -> host, a record: a signal's level re-reported after boot, not an edge */
};

enum jl_signal {
    JL_SIG_EV_CONNECTED = 1,
    JL_SIG_AUTHORIZED = 2,
    JL_SIG_BAY_OCCUPIED = 3,
    JL_SIG_RELAY_CLOSED = 4,
    JL_SIG_ENERGY_FLOWING = 5,
    JL_SIG_DATA_SIGNED = 6
};

/* FAULT string limits, in bytes of UTF-8 (doc section 3, "Faults"). */
#define JL_ERROR_CODE_MAX 50u
#define JL_VENDOR_ERROR_CODE_MAX 50u
#define JL_FAULT_INFO_MAX 500u
/* What the three strings may hold together in one frame: info is cut (at a character) to fit. */
#define JL_FAULT_TEXT_MAX (JL_MAX_BODY - JL_FAULT_BODY(0))  /* 487 */

/* EV_STATUS "unknown" values and departure sources (doc section 3, "EV status"). */
#define JL_SOC_UNKNOWN 0xFFFFu
#define JL_SOC_MAX 1000u                          /* 100.0 % in 0.1 % units */
#define JL_POWER_UNKNOWN (-2147483647 - 1)        /* INT32_MIN */
enum jl_departure_source {
    JL_DEPARTURE_NONE = 0,     /* no departure time: departure_time_us is 0 */
    JL_DEPARTURE_EV = 1,       /* the EV sent it */
    JL_DEPARTURE_OPERATOR = 2  /* set at the charger */
};

/* ---- CRC-32/ISO-HDLC (zlib's crc32) ------------------------------------------------------- */

/* One-shot CRC; jl_crc32("123456789", 9) == 0xCBF43926. */
uint32_t jl_crc32(const uint8_t *data, size_t len);
/* Incremental, same convention as zlib: start with crc = 0, feed the previous result back in. */
uint32_t jl_crc32_update(uint32_t crc, const uint8_t *data, size_t len);

/* ---- COBS ----------------------------------------------------------------------------------- */

/* Encodes len bytes; returns the encoded length (never 0: empty input encodes to 0x01), or 0 if
 * out_cap is too small. No delimiter is added. in and out must not overlap. */
size_t jl_cobs_encode(const uint8_t *in, size_t len, uint8_t *out, size_t out_cap);

#define JL_COBS_MALFORMED ((size_t)-1)
#define JL_COBS_NO_ROOM ((size_t)-2)
/* Decodes one frame without its delimiter; returns the decoded length (0 is valid: empty input),
 * JL_COBS_MALFORMED (a 0x00 inside, or a block running past the end) or JL_COBS_NO_ROOM.
 * out may equal in (decoding in place), but must not overlap it otherwise. */
size_t jl_cobs_decode(const uint8_t *in, size_t len, uint8_t *out, size_t out_cap);

/* ---- Encoding (MCU -> host) ----------------------------------------------------------------- */

/* Writes COBS(version|type|seq|body|crc) and the 0x00 delimiter to out; returns the number of
 * bytes to send, or 0 if out_cap is too small or the body exceeds JL_MAX_BODY. */
size_t jl_encode_frame(uint8_t type, uint32_t seq, const uint8_t *body, size_t body_len,
                       uint8_t *out, size_t out_cap);

/* One record of the ring: a SIGNAL, a LEVEL, a FAULT or an EV_STATUS, told apart by `type` (set by the
 * jl_ring_push* functions). time_us is when the hardware saw the change (LEVEL: when the level was
 * read), in us by the MCU's clock:
 * a free-running counter since boot or an RTC on UTC, whichever you have (the host maps it to UTC
 * with CLOCK_PROBE, doc section 5). 0 means unknown. Fields another type does not use are ignored.
 * 40 bytes on 32-bit targets, 48 on 64-bit ones. */
typedef struct {
    int64_t time_us;    /* all types */
    union {
        struct {        /* FAULT: NUL-terminated UTF-8, NOT copied: they must stay valid while the
                           record is in the ring (string literals or tables in flash are ideal) */
            const char *error_code;         /* 1..50 bytes: OCPP ChargePointErrorCode */
            const char *vendor_error_code;  /* NULL or "" = none; at most 50 bytes */
            const char *info;               /* NULL or "" = none; cut at a character to fit the frame */
        } fault;
        struct {        /* EV_STATUS */
            int64_t departure_time_us;      /* MCU clock, like time_us; 0 = none */
            int32_t power_w;                /* JL_POWER_UNKNOWN = unknown */
            uint32_t battery_capacity_wh;   /* 0 = unknown */
        } ev;
        struct {        /* LEVEL */
            int64_t age_us;  /* how long the level had held at time_us, by the same clock; 0 = unknown */
        } level;
    } u;
    uint32_t seq;       /* assigned by jl_ring_push* */
    uint16_t soc;       /* EV_STATUS: 0.1 % units, 0..1000, or JL_SOC_UNKNOWN */
    uint8_t type;       /* JL_TYPE_SIGNAL, JL_TYPE_LEVEL, JL_TYPE_FAULT or JL_TYPE_EV_STATUS */
    uint8_t evse_id;    /* all types */
    uint8_t connector_id;
    uint8_t signal;     /* SIGNAL, LEVEL: enum jl_signal */
    uint8_t state;      /* SIGNAL, LEVEL: 0 or 1; FAULT: 1 raised, 0 cleared; any non-zero value is sent as 1 */
    uint8_t departure_source; /* EV_STATUS: enum jl_departure_source, NONE exactly when no departure */
} jl_record;

/* HELLO: protocol version, boot_id, the firmware string (ASCII, NUL-terminated, truncated to 255
 * bytes), then the ring: oldest_seq, the seq of the oldest unacknowledged record still held (equal
 * to next_seq when none is), and next_seq, the seq the next record will get; the frame has seq 0.
 * Send it at boot and as the answer to every HOST_HELLO. jl_encode_hello_from_ring() (below) takes
 * boot_id and both seqs from your jl_ring. */
size_t jl_encode_hello(uint32_t boot_id, const char *firmware, uint32_t oldest_seq, uint32_t next_seq,
                       uint8_t *out, size_t out_cap);
/* SIGNAL with the record's own seq (a replay resends the original seq and time). */
size_t jl_encode_signal(const jl_record *rec, uint8_t *out, size_t out_cap);
/* LEVEL with the record's own seq; 0 also if u.level.age_us is negative (see jl_ring_push_level). */
size_t jl_encode_level(const jl_record *rec, uint8_t *out, size_t out_cap);
/* FAULT with the record's own seq; 0 also if the record is not a valid FAULT (see jl_ring_push_fault).
 * info is cut at a UTF-8 character boundary to what fits one frame. */
size_t jl_encode_fault(const jl_record *rec, uint8_t *out, size_t out_cap);
/* EV_STATUS with the record's own seq; 0 also if the record is not valid (see jl_ring_push_ev_status). */
size_t jl_encode_ev_status(const jl_record *rec, uint8_t *out, size_t out_cap);
/* Any record of the ring, by its type: what a transmit routine calls. JL_RECORD_LINE_MAX bytes of
 * out are enough for every valid record. */
size_t jl_encode_record(const jl_record *rec, uint8_t *out, size_t out_cap);
/* KEEPALIVE, seq 0: the MCU's clock (the one records and CLOCK_REPLY use; 0 = no reading), the boot
 * id, and next_seq: one more than the seq of the last record handed to the UART before this
 * KEEPALIVE (tx_pump's cursor + 1; 1 before any). The host asks for a replay when it has not received
 * them all: a lost last record is recovered without waiting for the next record (doc section 4.6). */
size_t jl_encode_keepalive(int64_t time_us, uint32_t boot_id, uint32_t next_seq, uint8_t *out, size_t out_cap);
/* CLOCK_REPLY, seq 0: the id of the CLOCK_PROBE it answers and the MCU clock (the one SIGNAL times
 * use) when that probe arrived. Read the clock in the receive path and send the reply at once,
 * ahead of queued records (doc section 5). */
size_t jl_encode_clock_reply(uint32_t probe_id, int64_t mcu_time_us, uint8_t *out, size_t out_cap);

/* ---- Decoding (host -> MCU) ----------------------------------------------------------------- */

typedef struct {
    uint8_t type;
    uint32_t seq;          /* the host's frame counter; nothing in the protocol depends on it */
    const uint8_t *body;   /* points into the decoder's buffer: valid until the next feed */
    size_t body_len;
} jl_frame;

typedef struct {
    uint8_t *buf;          /* decoded bytes of the frame being received */
    size_t cap, len;
    uint8_t block_left;    /* data bytes left in the current COBS block; 0: next byte is a code */
    uint8_t code;          /* code of the current block, 0 before the first one */
    bool discarding;       /* oversize: drop everything up to the next 0x00 */
    /* Counters, for diagnostics. Every non-empty run of bytes between two 0x00 adds exactly one
     * to frames or to one of the error counters. */
    uint32_t frames, crc_errors, cobs_errors, oversize, runt, bad_version;
} jl_decoder;

/* buf receives the decoded frame: JL_HOST_FRAME_MAX bytes are enough for protocol version 1. */
void jl_decoder_init(jl_decoder *d, uint8_t *buf, size_t cap);
/* Forget a half-received frame (e.g. after the UART reported a framing error); counters stay. */
void jl_decoder_reset(jl_decoder *d);
/* Feed one received byte. Returns 1 when it completed a frame whose CRC and version check out
 * (then *out is filled), else 0. Never fails: errors are counted and the decoder resynchronises
 * at the next 0x00. Unknown frame types are returned too; the caller skips them. */
int jl_decoder_feed(jl_decoder *d, uint8_t byte, jl_frame *out);

/* Each parser returns false if the frame is of another type or its body has the wrong size (a
 * peer bug: drop the frame). Outputs are written only on success. */
bool jl_parse_ack(const jl_frame *f, uint32_t *boot_id, uint32_t *seq);
bool jl_parse_host_hello(const jl_frame *f, uint8_t *protocol_version);
bool jl_parse_keepalive(const jl_frame *f, int64_t *time_us);
bool jl_parse_clock_probe(const jl_frame *f, uint32_t *probe_id);

/* ---- Ring of unacknowledged records (doc section 4) ------------------------------------------ */

typedef struct {
    jl_record *slots;
    uint16_t cap;
    uint16_t head;         /* slot of the oldest record */
    uint16_t count;
    uint32_t boot_id;      /* the seq space belongs to one boot: ACKs for another boot are ignored */
    uint32_t next_seq;     /* the records held are seq next_seq - count .. next_seq - 1 */
    uint32_t overflowed;   /* records overwritten before they were acknowledged */
} jl_ring;

/* storage holds capacity records. boot_id: random and non-zero, chosen once per boot. */
void jl_ring_init(jl_ring *r, jl_record *storage, uint16_t capacity, uint32_t boot_id);
/* A SIGNAL: sets rec->type, assigns rec->seq (1, 2, ...) and keeps a copy; when the ring is full
 * the oldest record is overwritten and counted in overflowed. Returns the seq. Send the record
 * afterwards (tx_pump in mcu/README.md). */
uint32_t jl_ring_push(jl_ring *r, jl_record *rec);
/* A LEVEL (rec: evse_id, connector_id, signal, state, time_us, u.level.age_us): after boot, one per
 * signal of every EVSE, 0s included, to say what the level is without claiming an edge (doc section
 * 4.3). Numbered like a SIGNAL. Returns 0 and pushes nothing if age_us is negative. */
uint32_t jl_ring_push_level(jl_ring *r, jl_record *rec);
/* A FAULT (rec: evse_id, connector_id, state, time_us, u.fault), numbered like a SIGNAL. Returns 0
 * and pushes nothing if the host would refuse it: error_code NULL, empty or over 50 bytes,
 * vendor_error_code over 50 bytes, or a string that is not valid UTF-8 (checked up to where info is
 * cut). The strings are not copied. */
uint32_t jl_ring_push_fault(jl_ring *r, jl_record *rec);
/* An EV_STATUS (rec: evse_id, connector_id, time_us, soc, u.ev, departure_source). Returns 0 and
 * pushes nothing if soc is over 1000 (and not JL_SOC_UNKNOWN), departure_source is not an enum
 * jl_departure_source, or departure_source is NONE while departure_time_us is not 0 (or the reverse). */
uint32_t jl_ring_push_ev_status(jl_ring *r, jl_record *rec);
/* The host stored every record of boot_id up to seq: frees them. Returns false (and changes
 * nothing) for another boot's ACK. */
bool jl_ring_ack(jl_ring *r, uint32_t boot_id, uint32_t seq);
/* Iterator for replay: the oldest held record with a seq greater than `after`, or NULL.
 *   for (p = jl_ring_next(r, 0); p != NULL; p = jl_ring_next(r, p->seq)) send(p);
 * Pushes and ACKs between two calls are fine, so a replay may be spread over many TX-ready
 * events: remember the last seq sent, not the pointer. */
const jl_record *jl_ring_next(const jl_ring *r, uint32_t after);
/* The seq of the oldest record held, or next_seq when the ring is empty (HELLO's oldest_seq). */
uint32_t jl_ring_oldest_seq(const jl_ring *r);
/* HELLO for this ring: its boot_id, jl_ring_oldest_seq() and next_seq. Send it, then the replay. */
size_t jl_encode_hello_from_ring(const jl_ring *r, const char *firmware, uint8_t *out, size_t out_cap);

#ifdef __cplusplus
}
#endif

#endif /* JOSEV_LINK_H */
