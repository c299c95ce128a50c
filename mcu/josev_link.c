/* josev_link: see josev_link.h and docs/serial-protocol.md. */
#include "josev_link.h"

/* JL_HOST_FRAME_MAX must hold every host->MCU frame of versions 1 and 2: a negative array size stops
 * the build if a body outgrows it. */
#define JL_HOST_BODY_FITS(n) (JL_FRAME_OVERHEAD + (n) <= JL_HOST_FRAME_MAX)
typedef char jl_host_frame_max_check[JL_HOST_BODY_FITS(JL_ACK_BODY) && JL_HOST_BODY_FITS(JL_HOST_KEEPALIVE_BODY)
                                     && JL_HOST_BODY_FITS(JL_HOST_HELLO_BODY)
                                     && JL_HOST_BODY_FITS(JL_CLOCK_PROBE_BODY) ? 1 : -1];

/* ---- little-endian packing ---------------------------------------------------------------- */
/* Byte by byte rather than casting a struct onto the buffer: the wire format stays the same on
 * big-endian CPUs, and unaligned accesses cannot fault on cores that forbid them. */

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static void put_u64(uint8_t *p, uint64_t v)
{
    put_u32(p, (uint32_t)v);
    put_u32(p + 4, (uint32_t)(v >> 32));
}

static void put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int64_t get_i64(const uint8_t *p)
{
    uint64_t u = (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
    /* Converting an out-of-range value to a signed type is implementation-defined in C99;
     * this spelling is exact on any conforming compiler. */
    return u <= (uint64_t)INT64_MAX ? (int64_t)u : -(int64_t)~u - 1;
}

/* ---- CRC-32/ISO-HDLC ---------------------------------------------------------------------- */
/* A 16-entry table processed a nibble at a time: 64 bytes of flash instead of 1 KiB for the
 * usual byte table, and a quarter of the loop iterations of the bitwise version. Frames are at
 * most 512 bytes, so speed hardly matters; flash often does. */

static const uint32_t crc_nibble[16] = {
    0x00000000u, 0x1DB71064u, 0x3B6E20C8u, 0x26D930ACu, 0x76DC4190u, 0x6B6B51F4u, 0x4DB26158u, 0x5005713Cu,
    0xEDB88320u, 0xF00F9344u, 0xD6D6A3E8u, 0xCB61B38Cu, 0x9B64C2B0u, 0x86D3D2D4u, 0xA00AE278u, 0xBDBDF21Cu,
};

uint32_t jl_crc32_update(uint32_t crc, const uint8_t *data, size_t len)
{
    crc = ~crc; /* zlib convention: the running value is kept post-inverted, so 0 starts a CRC */
    while (len--) {
        crc ^= *data++;
        crc = (crc >> 4) ^ crc_nibble[crc & 0x0Fu];
        crc = (crc >> 4) ^ crc_nibble[crc & 0x0Fu];
    }
    return ~crc;
}

uint32_t jl_crc32(const uint8_t *data, size_t len)
{
    return jl_crc32_update(0, data, len);
}

/* ---- COBS ---------------------------------------------------------------------------------- */
/* A streaming encoder, so a frame is encoded straight from its parts (header, body, CRC) into
 * the output without a second 512-byte buffer. It keeps counting past out_cap and only writes
 * what fits, which makes the size check a single comparison at the end. */

typedef struct {
    uint8_t *out;
    size_t cap, len, code_pos;
    uint8_t code;
} cobs_writer;

static void cw_init(cobs_writer *w, uint8_t *out, size_t cap)
{
    w->out = out;
    w->cap = cap;
    w->code_pos = 0;
    w->len = 1; /* out[0] is reserved for the first block's code */
    w->code = 1;
}

static void cw_end_block(cobs_writer *w)
{
    if (w->code_pos < w->cap)
        w->out[w->code_pos] = w->code;
}

static void cw_put(cobs_writer *w, uint8_t b)
{
    if (b != 0) {
        if (w->len < w->cap)
            w->out[w->len] = b;
        w->len++;
        w->code++;
    }
    /* Like Cheshire & Baker's (and the host's) encoder, a full block of 254 bytes closes at once,
     * so 254 non-zero bytes at the end are followed by an empty 0x01 block: byte-identical output. */
    if (b == 0 || w->code == 0xFF) {
        cw_end_block(w);
        w->code_pos = w->len++;
        w->code = 1;
    }
}

static void cw_write(cobs_writer *w, const uint8_t *p, size_t n)
{
    while (n--)
        cw_put(w, *p++);
}

static size_t cw_finish(cobs_writer *w)
{
    cw_end_block(w);
    return w->len <= w->cap ? w->len : 0;
}

size_t jl_cobs_encode(const uint8_t *in, size_t len, uint8_t *out, size_t out_cap)
{
    cobs_writer w;
    cw_init(&w, out, out_cap);
    cw_write(&w, in, len);
    return cw_finish(&w);
}

size_t jl_cobs_decode(const uint8_t *in, size_t len, uint8_t *out, size_t out_cap)
{
    size_t i = 0, o = 0;
    while (i < len) {
        uint8_t code = in[i++];
        size_t end;
        if (code == 0 || code - 1u > len - i)
            return JL_COBS_MALFORMED;
        end = i + code - 1u;
        while (i < end) {
            if (in[i] == 0)
                return JL_COBS_MALFORMED;
            if (o == out_cap)
                return JL_COBS_NO_ROOM;
            out[o++] = in[i++]; /* o < i always, which is what makes decoding in place safe */
        }
        /* A block shorter than 254 bytes stands for its data and a zero, except the last block:
         * its zero is the one the encoder appended to mark the end. */
        if (code != 0xFF && i < len) {
            if (o == out_cap)
                return JL_COBS_NO_ROOM;
            out[o++] = 0;
        }
    }
    return o;
}

/* ---- frames -------------------------------------------------------------------------------- */

/* A body in parts, so HELLO and FAULT send their fixed fields and the caller's strings without
 * copying them together into one buffer first. */
typedef struct {
    const uint8_t *p;
    size_t len;
} part;

static size_t encode_parts(uint8_t type, uint32_t seq, const part *parts, size_t count,
                           uint8_t *out, size_t out_cap)
{
    uint8_t head[6], tail[4];
    uint32_t crc;
    cobs_writer w;
    size_t i, n, body = 0;

    for (i = 0; i < count; i++) {
        if (parts[i].len > JL_MAX_BODY - body)
            return 0;
        body += parts[i].len;
    }
    head[0] = JL_FRAME_FORMAT;
    head[1] = type;
    put_u32(head + 2, seq);
    crc = jl_crc32_update(0, head, sizeof head);
    for (i = 0; i < count; i++)
        crc = jl_crc32_update(crc, parts[i].p, parts[i].len);
    put_u32(tail, crc);

    cw_init(&w, out, out_cap);
    cw_write(&w, head, sizeof head);
    for (i = 0; i < count; i++)
        cw_write(&w, parts[i].p, parts[i].len);
    cw_write(&w, tail, sizeof tail);
    n = cw_finish(&w);
    if (n == 0 || n >= out_cap) /* no room for the delimiter */
        return 0;
    out[n] = 0;
    return n + 1;
}

size_t jl_encode_frame(uint8_t type, uint32_t seq, const uint8_t *body, size_t body_len,
                       uint8_t *out, size_t out_cap)
{
    part one;
    one.p = body;
    one.len = body_len;
    return encode_parts(type, seq, &one, 1, out, out_cap);
}

size_t jl_encode_hello(uint32_t boot_id, const char *firmware, uint32_t oldest_seq, uint32_t next_seq,
                       uint8_t *out, size_t out_cap)
{
    uint8_t head[6], ring[8];
    part parts[3];
    size_t fw_len = 0;
    /* Bounded: the length field is a u8, and an unterminated string must not run away. */
    while (firmware != NULL && fw_len < 255 && firmware[fw_len] != '\0')
        fw_len++;
    head[0] = JL_PROTOCOL_VERSION;
    put_u32(head + 1, boot_id);
    head[5] = (uint8_t)fw_len;
    put_u32(ring, oldest_seq);
    put_u32(ring + 4, next_seq);
    parts[0].p = head;
    parts[0].len = sizeof head;
    parts[1].p = (const uint8_t *)firmware;
    parts[1].len = fw_len;
    parts[2].p = ring;
    parts[2].len = sizeof ring;
    /* HELLO is not a record: seq 0 (doc section 2). */
    return encode_parts(JL_TYPE_HELLO, 0, parts, 3, out, out_cap);
}

size_t jl_encode_signal(const jl_record *rec, uint8_t *out, size_t out_cap)
{
    uint8_t body[JL_SIGNAL_BODY];
    body[0] = rec->evse_id;
    body[1] = rec->connector_id;
    body[2] = rec->signal;
    body[3] = rec->state ? 1 : 0; /* the host rejects any other value */
    put_u64(body + 4, (uint64_t)rec->time_us);
    return jl_encode_frame(JL_TYPE_SIGNAL, rec->seq, body, sizeof body, out, out_cap);
}

size_t jl_encode_level(const jl_record *rec, uint8_t *out, size_t out_cap)
{
    uint8_t body[JL_LEVEL_BODY];
    if (rec->u.level.age_us < 0)
        return 0; /* the host rejects it: an age is a duration */
    body[0] = rec->evse_id;
    body[1] = rec->connector_id;
    body[2] = rec->signal;
    body[3] = rec->state ? 1 : 0;
    put_u64(body + 4, (uint64_t)rec->time_us);
    put_u64(body + 12, (uint64_t)rec->u.level.age_us);
    return jl_encode_frame(JL_TYPE_LEVEL, rec->seq, body, sizeof body, out, out_cap);
}

/* ---- FAULT and EV_STATUS ------------------------------------------------------------------- */

/* strlen, but reading at most max + 1 bytes: a result over max means "too long". */
static size_t bounded_len(const char *s, size_t max)
{
    size_t n = 0;
    while (s != NULL && n <= max && s[n] != '\0')
        n++;
    return n;
}

/* Well-formed UTF-8 as the host's strict decoder wants it: no overlong forms, no surrogates
 * (U+D800..DFFF), nothing above U+10FFFF. */
static bool utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0, k, j;
    while (i < n) {
        uint8_t c = s[i], lo = 0x80, hi = 0xBF;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c < 0xC2 || c > 0xF4)
            return false; /* a continuation byte, an overlong 2-byte lead, or beyond U+10FFFF */
        k = c < 0xE0 ? 1u : c < 0xF0 ? 2u : 3u;
        if (c == 0xE0)
            lo = 0xA0; /* overlong */
        else if (c == 0xED)
            hi = 0x9F; /* surrogates */
        else if (c == 0xF0)
            lo = 0x90; /* overlong */
        else if (c == 0xF4)
            hi = 0x8F; /* beyond U+10FFFF */
        if (k > n - i - 1 || s[i + 1] < lo || s[i + 1] > hi)
            return false;
        for (j = 2; j <= k; j++)
            if ((s[i + j] & 0xC0) != 0x80)
                return false;
        i += k + 1;
    }
    return true;
}

/* The lengths of a FAULT's three strings as sent (info cut at a character boundary to fit the
 * frame), or false if the host would refuse the record. */
static bool fault_lengths(const jl_record *rec, size_t len[3])
{
    const char *text[3];
    size_t i, room;
    text[0] = rec->u.fault.error_code;
    text[1] = rec->u.fault.vendor_error_code;
    text[2] = rec->u.fault.info;
    len[0] = bounded_len(text[0], JL_ERROR_CODE_MAX);
    len[1] = bounded_len(text[1], JL_VENDOR_ERROR_CODE_MAX);
    if (len[0] == 0 || len[0] > JL_ERROR_CODE_MAX || len[1] > JL_VENDOR_ERROR_CODE_MAX)
        return false;
    room = JL_FAULT_TEXT_MAX - len[0] - len[1]; /* >= 387: always below JL_FAULT_INFO_MAX */
    len[2] = bounded_len(text[2], room);
    if (len[2] > room) { /* cut; a character straddling the cut goes entirely */
        len[2] = room;
        while (len[2] > 0 && ((uint8_t)text[2][len[2]] & 0xC0) == 0x80)
            len[2]--;
    }
    for (i = 0; i < 3; i++)
        if (!utf8_valid((const uint8_t *)text[i], len[i]))
            return false;
    return true;
}

size_t jl_encode_fault(const jl_record *rec, uint8_t *out, size_t out_cap)
{
    uint8_t head[12], vc_len, info_len[2];
    size_t len[3];
    part parts[6];

    if (!fault_lengths(rec, len))
        return 0;
    head[0] = rec->evse_id;
    head[1] = rec->connector_id;
    head[2] = rec->state ? 1 : 0;
    put_u64(head + 3, (uint64_t)rec->time_us);
    head[11] = (uint8_t)len[0];
    vc_len = (uint8_t)len[1];
    put_u16(info_len, (uint16_t)len[2]);
    parts[0].p = head; /* evse, connector, active, time_us and error_code's length */
    parts[0].len = sizeof head;
    parts[1].p = (const uint8_t *)rec->u.fault.error_code;
    parts[1].len = len[0];
    parts[2].p = &vc_len;
    parts[2].len = 1;
    parts[3].p = (const uint8_t *)rec->u.fault.vendor_error_code;
    parts[3].len = len[1];
    parts[4].p = info_len;
    parts[4].len = sizeof info_len;
    parts[5].p = (const uint8_t *)rec->u.fault.info;
    parts[5].len = len[2];
    return encode_parts(JL_TYPE_FAULT, rec->seq, parts, 6, out, out_cap);
}

static bool ev_status_valid(const jl_record *rec)
{
    return (rec->soc <= JL_SOC_MAX || rec->soc == JL_SOC_UNKNOWN)
           && rec->departure_source <= JL_DEPARTURE_OPERATOR
           && (rec->u.ev.departure_time_us == 0) == (rec->departure_source == JL_DEPARTURE_NONE);
}

size_t jl_encode_ev_status(const jl_record *rec, uint8_t *out, size_t out_cap)
{
    uint8_t body[JL_EV_STATUS_BODY];
    if (!ev_status_valid(rec))
        return 0;
    body[0] = rec->evse_id;
    body[1] = rec->connector_id;
    put_u64(body + 2, (uint64_t)rec->time_us);
    put_u16(body + 10, rec->soc);
    put_u32(body + 12, (uint32_t)rec->u.ev.power_w);
    put_u32(body + 16, rec->u.ev.battery_capacity_wh);
    put_u64(body + 20, (uint64_t)rec->u.ev.departure_time_us);
    body[28] = rec->departure_source;
    return jl_encode_frame(JL_TYPE_EV_STATUS, rec->seq, body, sizeof body, out, out_cap);
}

size_t jl_encode_record(const jl_record *rec, uint8_t *out, size_t out_cap)
{
    switch (rec->type) {
    case JL_TYPE_SIGNAL:
        return jl_encode_signal(rec, out, out_cap);
    case JL_TYPE_LEVEL:
        return jl_encode_level(rec, out, out_cap);
    case JL_TYPE_FAULT:
        return jl_encode_fault(rec, out, out_cap);
    case JL_TYPE_EV_STATUS:
        return jl_encode_ev_status(rec, out, out_cap);
    default:
        return 0;
    }
}

size_t jl_encode_keepalive(int64_t time_us, uint32_t boot_id, uint32_t next_seq, uint8_t *out, size_t out_cap)
{
    uint8_t body[JL_KEEPALIVE_BODY];
    put_u64(body, (uint64_t)time_us);
    put_u32(body + 8, boot_id);
    put_u32(body + 12, next_seq);
    return jl_encode_frame(JL_TYPE_KEEPALIVE, 0, body, sizeof body, out, out_cap);
}

size_t jl_encode_clock_reply(uint32_t probe_id, int64_t mcu_time_us, uint8_t *out, size_t out_cap)
{
    uint8_t body[JL_CLOCK_REPLY_BODY];
    put_u32(body, probe_id);
    put_u64(body + 4, (uint64_t)mcu_time_us);
    /* Not a record either: seq 0, like HELLO and KEEPALIVE. */
    return jl_encode_frame(JL_TYPE_CLOCK_REPLY, 0, body, sizeof body, out, out_cap);
}

/* ---- streaming decoder --------------------------------------------------------------------- */
/* COBS is undone byte by byte as the bytes arrive, so the buffer only ever holds the decoded
 * frame: a host->MCU decoder needs JL_HOST_FRAME_MAX (18) bytes of RAM, not a line's worth. */

void jl_decoder_reset(jl_decoder *d)
{
    d->len = 0;
    d->block_left = 0;
    d->code = 0;
    d->discarding = false;
}

void jl_decoder_init(jl_decoder *d, uint8_t *buf, size_t cap)
{
    d->buf = buf;
    d->cap = cap;
    d->frames = d->crc_errors = d->cobs_errors = d->oversize = d->runt = d->bad_version = 0;
    jl_decoder_reset(d);
}

static void dec_put(jl_decoder *d, uint8_t b)
{
    if (d->len == d->cap) {
        d->oversize++;
        d->discarding = true; /* line noise or a frame we could not use: skip to the next 0x00 */
        return;
    }
    d->buf[d->len++] = b;
}

static int dec_end(jl_decoder *d, jl_frame *out)
{
    const uint8_t *f = d->buf;
    size_t n = d->len;
    bool empty = d->code == 0, truncated = d->block_left != 0, discarded = d->discarding;

    jl_decoder_reset(d); /* the buffer keeps its bytes until the next feed: out->body stays valid */
    if (empty || discarded) /* 0x00 0x00 is a resync, not an error; oversize is already counted */
        return 0;
    if (truncated) {
        d->cobs_errors++;
        return 0;
    }
    if (n < JL_FRAME_OVERHEAD) {
        d->runt++;
        return 0;
    }
    if (jl_crc32(f, n - 4) != get_u32(f + n - 4)) {
        d->crc_errors++;
        return 0;
    }
    if (f[0] != JL_FRAME_FORMAT) {
        d->bad_version++;
        return 0;
    }
    d->frames++;
    out->type = f[1];
    out->seq = get_u32(f + 2);
    out->body = f + 6;
    out->body_len = n - JL_FRAME_OVERHEAD;
    return 1;
}

int jl_decoder_feed(jl_decoder *d, uint8_t byte, jl_frame *out)
{
    if (byte == 0)
        return dec_end(d, out);
    if (d->discarding)
        return 0;
    if (d->block_left == 0) { /* a code byte */
        /* The previous block's implied zero is real only now that we know another block follows. */
        if (d->code != 0 && d->code != 0xFF)
            dec_put(d, 0);
        d->code = byte;
        d->block_left = (uint8_t)(byte - 1u);
        return 0;
    }
    d->block_left--;
    dec_put(d, byte);
    return 0;
}

bool jl_parse_ack(const jl_frame *f, uint32_t *boot_id, uint32_t *seq)
{
    if (f->type != JL_TYPE_ACK || f->body_len != JL_ACK_BODY)
        return false;
    *boot_id = get_u32(f->body);
    *seq = get_u32(f->body + 4);
    return true;
}

bool jl_parse_host_hello(const jl_frame *f, uint8_t *protocol_version)
{
    if (f->type != JL_TYPE_HOST_HELLO || f->body_len != JL_HOST_HELLO_BODY)
        return false;
    *protocol_version = f->body[0];
    return true;
}

bool jl_parse_keepalive(const jl_frame *f, int64_t *time_us)
{
    if (f->type != JL_TYPE_KEEPALIVE || f->body_len != JL_HOST_KEEPALIVE_BODY)
        return false;
    *time_us = get_i64(f->body);
    return true;
}

bool jl_parse_clock_probe(const jl_frame *f, uint32_t *probe_id)
{
    if (f->type != JL_TYPE_CLOCK_PROBE || f->body_len != JL_CLOCK_PROBE_BODY)
        return false;
    *probe_id = get_u32(f->body);
    return true;
}

/* ---- ring of unacknowledged records -------------------------------------------------------- */
/* Records held always have consecutive seqs (push appends the next one, ACK and overflow remove
 * the oldest), so a seq maps to a slot by arithmetic: no search, no per-slot "used" flag. */

static uint16_t ring_slot(const jl_ring *r, uint32_t offset) /* offset <= count <= cap */
{
    uint32_t i = (uint32_t)r->head + offset;
    return (uint16_t)(i >= r->cap ? i - r->cap : i);
}

void jl_ring_init(jl_ring *r, jl_record *storage, uint16_t capacity, uint32_t boot_id)
{
    r->slots = storage;
    r->cap = capacity;
    r->head = 0;
    r->count = 0;
    r->boot_id = boot_id;
    r->next_seq = 1; /* seq 0 is what HELLO and KEEPALIVE carry */
    r->overflowed = 0;
}

static uint32_t ring_push(jl_ring *r, jl_record *rec)
{
    rec->seq = r->next_seq++;
    if (r->cap == 0) {
        r->overflowed++;
    } else if (r->count == r->cap) {
        /* Keep the newest: the host reports the gap in seq, which is better than going silent. */
        r->slots[r->head] = *rec;
        r->head = ring_slot(r, 1);
        r->overflowed++;
    } else {
        r->slots[ring_slot(r, r->count)] = *rec;
        r->count++;
    }
    return rec->seq;
}

uint32_t jl_ring_push(jl_ring *r, jl_record *rec)
{
    rec->type = JL_TYPE_SIGNAL;
    return ring_push(r, rec);
}

uint32_t jl_ring_push_level(jl_ring *r, jl_record *rec)
{
    if (rec->u.level.age_us < 0)
        return 0; /* refused here, like a bad FAULT: the host would never acknowledge it */
    rec->type = JL_TYPE_LEVEL;
    return ring_push(r, rec);
}

uint32_t jl_ring_push_fault(jl_ring *r, jl_record *rec)
{
    size_t len[3];
    /* Refused here, not when sending: a record the host rejects would never be acknowledged, and
     * every record after it would wait behind the gap. */
    if (!fault_lengths(rec, len))
        return 0;
    rec->type = JL_TYPE_FAULT;
    return ring_push(r, rec);
}

uint32_t jl_ring_push_ev_status(jl_ring *r, jl_record *rec)
{
    if (!ev_status_valid(rec))
        return 0;
    rec->type = JL_TYPE_EV_STATUS;
    return ring_push(r, rec);
}

bool jl_ring_ack(jl_ring *r, uint32_t boot_id, uint32_t seq)
{
    uint32_t first = r->next_seq - r->count, n;
    if (boot_id != r->boot_id)
        return false; /* an ACK from before our reboot: its seqs are not ours */
    if (r->count == 0 || seq < first)
        return true; /* a repeated or late ACK */
    n = seq - first + 1u;
    if (n > r->count)
        n = r->count;
    r->head = ring_slot(r, n);
    r->count = (uint16_t)(r->count - n);
    return true;
}

const jl_record *jl_ring_next(const jl_ring *r, uint32_t after)
{
    uint32_t first = r->next_seq - r->count;
    if (r->count == 0 || after >= r->next_seq - 1u)
        return NULL;
    return &r->slots[ring_slot(r, (after < first ? first : after + 1u) - first)];
}

uint32_t jl_ring_oldest_seq(const jl_ring *r)
{
    return r->next_seq - r->count; /* the records held are consecutive and end at next_seq - 1 */
}

size_t jl_encode_hello_from_ring(const jl_ring *r, const char *firmware, uint8_t *out, size_t out_cap)
{
    return jl_encode_hello(r->boot_id, firmware, jl_ring_oldest_seq(r), r->next_seq, out, out_cap);
}
