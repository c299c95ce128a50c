/*
 * jl_cli: a test driver for josev_link, not firmware. tests/mcu/test_c_reference.py runs it as one
 * long-lived process: one command per line on stdin, exactly one line of output per command.
 * Bytes go in and out as lowercase hex ("-" or nothing for none). Errors are "ERR <reason>".
 *
 *   crc <hex>                                     CRC-32 as 8 hex digits
 *   cobs <hex> | uncobs <hex>                     jl_cobs_encode / jl_cobs_decode (uncobs also
 *                                                 decodes in place and checks both agree)
 *   cap <n>                                       output capacity the encoders get (default 4096)
 *   frame <type> <seq> <hexbody>                  jl_encode_frame
 *   signal <seq> <evse> <conn> <sig> <state> <time_us>
 *   level <seq> <evse> <conn> <sig> <state> <time_us> <age_us>
 *   fault <seq> <evse> <conn> <active> <time_us> <error_code> <vendor_error_code> <info>
 *                                                 jl_encode_fault; the strings as hex ("-": empty)
 *   ev_status <seq> <evse> <conn> <time_us> <soc> <power_w> <capacity_wh> <departure_us> <source>
 *   hello <boot_id> <oldest_seq> <next_seq> <firmware, rest of the line>
 *   keepalive <time_us> <boot_id> <next_seq>
 *   clock_reply <probe_id> <mcu_time_us>
 *   decoder <buf_cap>                             a fresh decoder with a buffer of buf_cap bytes
 *   decode <hex>                                  feed the decoder: "<n> <frame>..." where each
 *       frame is type:seq:bodyhex:parsed, parsed = ack=<boot>,<seq> | host_hello=<v> |
 *       keepalive=<t> | clock_probe=<id> | bad (a host->MCU type with a wrong body size) |
 *       - (any other type)
 *   counters                                      the decoder's counters
 *   ring <cap> <boot_id>                          a fresh ring (and the boot id HELLO reports),
 *                                                 send cursor at 0
 *   push <evse> <conn> <sig> <state> <time_us>    jl_ring_push: prints the seq
 *   pushlevel <evse> <conn> <sig> <state> <time_us> <age_us>
 *                                                 jl_ring_push_level: the seq, or 0 if refused
 *   pushfault <evse> <conn> <active> <time_us> <error_code> <vendor_error_code> <info>
 *                                                 jl_ring_push_fault (strings as hex, kept until the
 *                                                 next "ring"): the seq, or 0 if refused
 *   pushev <evse> <conn> <time_us> <soc> <power_w> <capacity_wh> <departure_us> <source>
 *                                                 jl_ring_push_ev_status: the seq, or 0 if refused
 *   ack <boot_id> <seq>                           jl_ring_ack: 1 or 0
 *   next <after>                                  jl_ring_next: seq or "none"
 *   replay                                        every held record, encoded (jl_encode_record),
 *                                                 in ring order
 *   pump                                          tx_pump(): records after the send cursor
 *   tick                                          send_keepalive(): the KEEPALIVE the example
 *                                                 firmware sends every second
 *   rstat                                         ring counts, send cursor, host frames and clock
 *   fw <firmware>                                 the firmware string HELLO reports in rx
 *   clock <us>                                    set the MCU clock rx stamps frames with; each
 *                                                 byte rx feeds advances it by 87 us (115200 baud)
 *   rx <hex>                                      what example firmware does with host bytes
 *                                                 (handle_host_frame below): prints its reply,
 *                                                 the priority lane (HELLO, CLOCK_REPLY) first
 *   sizes                                         the buffer-size macros of josev_link.h
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../josev_link.h"

#define LINE_MAX_CHARS (1u << 20)
#define RING_MAX 4096u
#define DEC_BUF_MAX 1024u
#define OUT_CAP_MAX (1u << 16)

static char input[LINE_MAX_CHARS];
static uint8_t bytes[LINE_MAX_CHARS / 2];
/* The buffers the library gets are heap blocks of exactly the capacity it is told, so that an
 * AddressSanitizer build catches a write one byte past the end. */
static uint8_t *outbuf;
static size_t out_cap = 4096;

static uint8_t *dec_buf;
static jl_decoder dec;
static jl_record *ring_storage;
static jl_ring ring;
/* FAULT strings pushed into the ring: the library keeps pointers, so they live until the next "ring" */
static char **fault_texts;
static size_t fault_text_count;
static char firmware[256] = "jl_cli 1.0";
static int64_t host_time_us;
static uint32_t fake_ms;       /* a clock that ticks once per host frame, enough to see it move */
static uint32_t host_heard_ms; /* when the last verified host frame arrived */
static uint32_t tx_after;      /* seq of the last record handed to the "UART" */
static int64_t mcu_clock;      /* the MCU clock; rx advances it by RX_BYTE_US per byte received */
#define RX_BYTE_US 87          /* one byte (10 bits) at 115200 baud */

/* The "UART": what a reply would put on the line, in two lanes. The priority lane (HELLO and
 * CLOCK_REPLY) is what a real TX interrupt sends first at the next frame boundary; nothing leaves
 * during one rx command, so all of it comes out ahead of the normal queue (records). */
static uint8_t tx[(RING_MAX + 2) * JL_SIGNAL_LINE_MAX + 16 * JL_RECORD_LINE_MAX + JL_HELLO_LINE_MAX(255)];
static size_t tx_len;
static uint8_t tx_urgent[4 * JL_HELLO_LINE_MAX(255) + 64 * JL_CLOCK_REPLY_LINE_MAX];
static size_t tx_urgent_len;

static void uart_write(const uint8_t *p, size_t n)
{
    if (n > sizeof tx - tx_len)
        return; /* a full UART drops the frame; the record stays in the ring */
    memcpy(tx + tx_len, p, n);
    tx_len += n;
}

static void uart_write_urgent(const uint8_t *p, size_t n)
{
    if (n > sizeof tx_urgent - tx_urgent_len)
        return; /* full: dropped (a lost CLOCK_REPLY, the host times the probe out) */
    memcpy(tx_urgent + tx_urgent_len, p, n);
    tx_urgent_len += n;
}

static size_t uart_tx_room(void)
{
    return sizeof tx - tx_len;
}

static uint32_t now_ms(void)
{
    return ++fake_ms;
}

static int64_t mcu_clock_us(void)
{
    return mcu_clock;
}

static void print_hex(const uint8_t *p, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        printf("%02x", p[i]);
}

static int hex_nibble(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Parses hex (or "-" / nothing for no bytes) into bytes[]; returns the count or -1. */
static long parse_hex(const char *s)
{
    size_t n = 0;
    if (s == NULL || strcmp(s, "-") == 0)
        return 0;
    while (s[0] != '\0' && s[1] != '\0') {
        int hi = hex_nibble(s[0]), lo = hex_nibble(s[1]);
        if (hi < 0 || lo < 0)
            return -1;
        bytes[n++] = (uint8_t)(hi << 4 | lo);
        s += 2;
    }
    return s[0] == '\0' ? (long)n : -1;
}

static int parse_num(const char *s, long long lo, long long hi, long long *v)
{
    char *end;
    if (s == NULL)
        return 0;
    errno = 0;
    *v = strtoll(s, &end, 10);
    return *end == '\0' && end != s && errno == 0 && *v >= lo && *v <= hi;
}

static int parse_u64(const char *s, unsigned long long hi, unsigned long long *v)
{
    char *end;
    if (s == NULL || *s == '-')
        return 0;
    errno = 0;
    *v = strtoull(s, &end, 10);
    return *end == '\0' && end != s && errno == 0 && *v <= hi;
}

#define ARG(i) (argc > (i) ? argv[i] : NULL)
#define U32(i, v) parse_u64(ARG(i), 0xFFFFFFFFull, &(v))
#define U8(i, v) parse_u64(ARG(i), 0xFFull, &(v))
#define I64(i, v) parse_num(ARG(i), -0x7FFFFFFFFFFFFFFFll - 1, 0x7FFFFFFFFFFFFFFFll, &(v))

static void print_encoded(size_t n)
{
    if (n == 0) {
        printf("ERR encode");
        return;
    }
    print_hex(outbuf, n);
}

/* ---- the pattern mcu/README.md describes (the tests check the README quotes it verbatim) ---- */

static void send_hello(void)
{
    uint8_t line[JL_HELLO_LINE_MAX(255)];
    uart_write_urgent(line, jl_encode_hello_from_ring(&ring, firmware, line, sizeof line));
}

static void tx_pump(void)   /* call after a push, after a HOST_HELLO, and when the UART has room */
{
    static uint8_t line[JL_RECORD_LINE_MAX];   /* 516 bytes (a FAULT may fill a frame): not on the stack */
    const jl_record *p;
    size_t n;
    while ((p = jl_ring_next(&ring, tx_after)) != NULL
           && (n = jl_encode_record(p, line, sizeof line)) <= uart_tx_room()) {
        uart_write(line, n);   /* records in the ring always encode: the push functions checked them */
        tx_after = p->seq;
    }
}

static void send_keepalive(void)   /* every second, on the normal lane: behind the records handed over */
{
    uint8_t line[JL_KEEPALIVE_LINE_MAX];   /* 28 bytes */
    /* tx_after + 1: every record before it is on its way, so a host that lacks one (the last record
       lost on the line) asks for the replay now instead of at the next record (doc section 4.6). */
    uart_write(line, jl_encode_keepalive(mcu_clock_us(), ring.boot_id, tx_after + 1u, line, sizeof line));
}

static void handle_host_frame(const jl_frame *f, int64_t rx_us)   /* rx_us: MCU clock at its 0x00 */
{
    uint32_t boot_id, seq, probe_id;
    uint8_t version;
    int64_t time_us;

    host_heard_ms = now_ms();                 /* any verified frame proves the host is alive */
    if (jl_parse_clock_probe(f, &probe_id)) {
        /* The host measures our clock (doc section 5): reply with the clock when the probe
           arrived, on the priority lane, ahead of queued records. The host keeps only its
           fastest exchanges: a reply that waits makes a poor sample. */
        uint8_t line[JL_CLOCK_REPLY_LINE_MAX];   /* 24 bytes */
        uart_write_urgent(line, jl_encode_clock_reply(probe_id, rx_us, line, sizeof line));
    } else if (jl_parse_host_hello(f, &version)) {
        /* The host (re)opened the port: HELLO with the ring's oldest and next seq, then every
           unacknowledged record in seq order, with its original seq and time (doc section 4.1).
           Whatever version the host names: HELLO states ours, and the host adapts to it.
           send_hello() uses the priority lane, so no later CLOCK_REPLY overtakes the HELLO. */
        send_hello();
        tx_after = 0;
        tx_pump();
    } else if (jl_parse_ack(f, &boot_id, &seq)) {
        /* Everything of this boot up to seq is stored durably: free it. An ACK naming another
           boot_id (sent before we rebooted) is ignored by jl_ring_ack. Nothing is sent back. */
        jl_ring_ack(&ring, boot_id, seq);
    } else if (jl_parse_keepalive(f, &time_us)) {
        /* The host's clock (0 = unknown). Informational: the host maps our clock itself. */
        host_time_us = time_us;
    }
    /* Anything else: a type from a newer host, or a known type with a bad body: skip it. */
}

/* ---- commands ------------------------------------------------------------------------------- */

static void cmd_decode(const uint8_t *p, size_t n, int act)
{
    jl_frame f;
    size_t i, count = 0;
    static char report[LINE_MAX_CHARS * 4];
    size_t r = 0;

    tx_len = tx_urgent_len = 0;
    for (i = 0; i < n; i++) {
        uint32_t boot_id, seq, probe_id;
        uint8_t version;
        int64_t time_us;
        size_t k;
        if (act)
            mcu_clock += RX_BYTE_US; /* the byte has arrived */
        if (!jl_decoder_feed(&dec, p[i], &f))
            continue;
        count++;
        if (act) {
            handle_host_frame(&f, mcu_clock); /* the clock when the frame's 0x00 arrived */
            continue;
        }
        r += (size_t)sprintf(report + r, " %u:%lu:", (unsigned)f.type, (unsigned long)f.seq);
        for (k = 0; k < f.body_len; k++)
            r += (size_t)sprintf(report + r, "%02x", f.body[k]);
        if (jl_parse_ack(&f, &boot_id, &seq))
            r += (size_t)sprintf(report + r, ":ack=%lu,%lu", (unsigned long)boot_id, (unsigned long)seq);
        else if (jl_parse_host_hello(&f, &version))
            r += (size_t)sprintf(report + r, ":host_hello=%u", (unsigned)version);
        else if (jl_parse_keepalive(&f, &time_us))
            r += (size_t)sprintf(report + r, ":keepalive=%lld", (long long)time_us);
        else if (jl_parse_clock_probe(&f, &probe_id))
            r += (size_t)sprintf(report + r, ":clock_probe=%lu", (unsigned long)probe_id);
        else if (f.type == JL_TYPE_ACK || f.type == JL_TYPE_HOST_HELLO || f.type == JL_TYPE_KEEPALIVE
                 || f.type == JL_TYPE_CLOCK_PROBE)
            r += (size_t)sprintf(report + r, ":bad");
        else
            r += (size_t)sprintf(report + r, ":-");
    }
    if (act) {
        print_hex(tx_urgent, tx_urgent_len);
        print_hex(tx, tx_len);
    } else {
        report[r] = '\0';
        printf("%lu%s", (unsigned long)count, report);
    }
}

/* A hex argument as a NUL-terminated string: into buf (cap bytes), or a new heap copy if keep.
 * NULL on bad hex; "-" is the empty string. */
static char *hex_string(const char *hex, char *buf, size_t cap, int keep)
{
    long n = parse_hex(hex);
    char *s = buf;
    if (n < 0 || (!keep && (size_t)n >= cap))
        return NULL;
    if (keep) {
        char **grown = realloc(fault_texts, (fault_text_count + 1) * sizeof *fault_texts);
        if (grown == NULL || (s = malloc((size_t)n + 1)) == NULL)
            return NULL;
        fault_texts = grown;
        fault_texts[fault_text_count++] = s;
    }
    memcpy(s, bytes, (size_t)n);
    s[n] = '\0';
    return s;
}

static void forget_fault_texts(void)
{
    while (fault_text_count > 0)
        free(fault_texts[--fault_text_count]);
}

/* The FAULT fields of a fault/pushfault command: argv[first..first+6]; 0 on a bad argument. */
static int fault_args(char **argv, int argc, int first, jl_record *rec, int keep)
{
    static char text[3][LINE_MAX_CHARS / 2];
    unsigned long long evse, conn, active;
    long long t;
    char *s[3];
    int i;
    if (!(parse_u64(ARG(first), 0xFFull, &evse) && parse_u64(ARG(first + 1), 0xFFull, &conn)
          && parse_u64(ARG(first + 2), 0xFFull, &active) && I64(first + 3, t)))
        return 0;
    for (i = 0; i < 3; i++)
        if ((s[i] = hex_string(ARG(first + 4 + i), text[i], sizeof text[i], keep)) == NULL)
            return 0;
    memset(rec, 0, sizeof *rec);
    rec->evse_id = (uint8_t)evse;
    rec->connector_id = (uint8_t)conn;
    rec->state = (uint8_t)active;
    rec->time_us = t;
    rec->u.fault.error_code = s[0];
    rec->u.fault.vendor_error_code = s[1];
    rec->u.fault.info = s[2];
    return 1;
}

/* The EV_STATUS fields of an ev_status/pushev command: argv[first..first+7]; 0 on a bad argument. */
static int ev_args(char **argv, int argc, int first, jl_record *rec)
{
    unsigned long long evse, conn, soc, capacity, source;
    long long t, power, departure;
    if (!(parse_u64(ARG(first), 0xFFull, &evse) && parse_u64(ARG(first + 1), 0xFFull, &conn)
          && I64(first + 2, t) && parse_u64(ARG(first + 3), 0xFFFFull, &soc)
          && parse_num(ARG(first + 4), -0x7FFFFFFFll - 1, 0x7FFFFFFFll, &power)
          && parse_u64(ARG(first + 5), 0xFFFFFFFFull, &capacity) && I64(first + 6, departure)
          && parse_u64(ARG(first + 7), 0xFFull, &source)))
        return 0;
    memset(rec, 0, sizeof *rec);
    rec->evse_id = (uint8_t)evse;
    rec->connector_id = (uint8_t)conn;
    rec->time_us = t;
    rec->soc = (uint16_t)soc;
    rec->u.ev.power_w = (int32_t)power;
    rec->u.ev.battery_capacity_wh = (uint32_t)capacity;
    rec->u.ev.departure_time_us = departure;
    rec->departure_source = (uint8_t)source;
    return 1;
}

/* The LEVEL fields of a level/pushlevel command: argv[first..first+5]; 0 on a bad argument. */
static int level_args(char **argv, int argc, int first, jl_record *rec)
{
    unsigned long long evse, conn, sig, state;
    long long t, age;
    if (!(parse_u64(ARG(first), 0xFFull, &evse) && parse_u64(ARG(first + 1), 0xFFull, &conn)
          && parse_u64(ARG(first + 2), 0xFFull, &sig) && parse_u64(ARG(first + 3), 0xFFull, &state)
          && I64(first + 4, t) && I64(first + 5, age)))
        return 0;
    memset(rec, 0, sizeof *rec);
    rec->evse_id = (uint8_t)evse;
    rec->connector_id = (uint8_t)conn;
    rec->signal = (uint8_t)sig;
    rec->state = (uint8_t)state;
    rec->time_us = t;
    rec->u.level.age_us = age;
    return 1;
}

static void run(char *cmd, char *rest)
{
    char *argv[12];
    int argc = 0;
    long n;
    unsigned long long a, b, c, d, e;
    long long t;
    jl_record rec;

    /* hello and fw take the rest of the line verbatim (firmware strings contain spaces). */
    if (strcmp(cmd, "hello") == 0) {
        char *word[3], *fw = rest;
        for (n = 0; n < 3; n++) {
            word[n] = fw;
            fw = fw ? strchr(fw, ' ') : NULL;
            if (fw != NULL)
                *fw++ = '\0';
        }
        if (!parse_u64(word[0], 0xFFFFFFFFull, &a) || !parse_u64(word[1], 0xFFFFFFFFull, &b)
            || !parse_u64(word[2], 0xFFFFFFFFull, &c)) {
            printf("ERR args");
            return;
        }
        print_encoded(jl_encode_hello((uint32_t)a, fw ? fw : "", (uint32_t)b, (uint32_t)c, outbuf, out_cap));
        return;
    }
    if (strcmp(cmd, "fw") == 0) {
        strncpy(firmware, rest ? rest : "", sizeof firmware - 1);
        printf("OK");
        return;
    }
    for (argv[argc] = rest ? strtok(rest, " ") : NULL; argv[argc] != NULL && argc < 11;)
        argv[++argc] = strtok(NULL, " ");

    if (strcmp(cmd, "crc") == 0 && (n = parse_hex(ARG(0))) >= 0) {
        printf("%08lx", (unsigned long)jl_crc32(bytes, (size_t)n));
    } else if (strcmp(cmd, "cobs") == 0 && (n = parse_hex(ARG(0))) >= 0) {
        print_encoded(jl_cobs_encode(bytes, (size_t)n, outbuf, out_cap));
    } else if (strcmp(cmd, "uncobs") == 0 && (n = parse_hex(ARG(0))) >= 0) {
        size_t m = jl_cobs_decode(bytes, (size_t)n, outbuf, out_cap);
        size_t m2 = jl_cobs_decode(bytes, (size_t)n, bytes, out_cap);
        if (m != m2 || (m < JL_COBS_NO_ROOM && m > 0 && memcmp(outbuf, bytes, m) != 0))
            printf("ERR in-place decoding differs");
        else if (m == JL_COBS_MALFORMED)
            printf("ERR malformed");
        else if (m == JL_COBS_NO_ROOM)
            printf("ERR room");
        else
            print_hex(outbuf, m);
    } else if (strcmp(cmd, "cap") == 0 && parse_u64(ARG(0), OUT_CAP_MAX, &a)) {
        out_cap = (size_t)a;
        free(outbuf);
        outbuf = malloc(out_cap);
        printf("OK");
    } else if (strcmp(cmd, "frame") == 0 && U8(0, a) && U32(1, b) && (n = parse_hex(ARG(2))) >= 0) {
        print_encoded(jl_encode_frame((uint8_t)a, (uint32_t)b, bytes, (size_t)n, outbuf, out_cap));
    } else if (strcmp(cmd, "signal") == 0 && U32(0, a) && U8(1, b) && U8(2, c) && U8(3, d) && U8(4, e)
               && I64(5, t)) {
        rec.seq = (uint32_t)a;
        rec.evse_id = (uint8_t)b;
        rec.connector_id = (uint8_t)c;
        rec.signal = (uint8_t)d;
        rec.state = (uint8_t)e;
        rec.time_us = t;
        print_encoded(jl_encode_signal(&rec, outbuf, out_cap));
    } else if (strcmp(cmd, "level") == 0 && U32(0, a) && level_args(argv, argc, 1, &rec)) {
        rec.seq = (uint32_t)a;
        print_encoded(jl_encode_level(&rec, outbuf, out_cap));
    } else if (strcmp(cmd, "pushlevel") == 0 && level_args(argv, argc, 0, &rec)) {
        printf("%lu", (unsigned long)jl_ring_push_level(&ring, &rec));
    } else if (strcmp(cmd, "fault") == 0 && U32(0, a) && fault_args(argv, argc, 1, &rec, 0)) {
        rec.seq = (uint32_t)a;
        print_encoded(jl_encode_fault(&rec, outbuf, out_cap));
    } else if (strcmp(cmd, "ev_status") == 0 && U32(0, a) && ev_args(argv, argc, 1, &rec)) {
        rec.seq = (uint32_t)a;
        print_encoded(jl_encode_ev_status(&rec, outbuf, out_cap));
    } else if (strcmp(cmd, "pushfault") == 0 && fault_args(argv, argc, 0, &rec, 1)) {
        printf("%lu", (unsigned long)jl_ring_push_fault(&ring, &rec));
    } else if (strcmp(cmd, "pushev") == 0 && ev_args(argv, argc, 0, &rec)) {
        printf("%lu", (unsigned long)jl_ring_push_ev_status(&ring, &rec));
    } else if (strcmp(cmd, "keepalive") == 0 && I64(0, t) && U32(1, a) && U32(2, b)) {
        print_encoded(jl_encode_keepalive(t, (uint32_t)a, (uint32_t)b, outbuf, out_cap));
    } else if (strcmp(cmd, "clock_reply") == 0 && U32(0, a) && I64(1, t)) {
        print_encoded(jl_encode_clock_reply((uint32_t)a, t, outbuf, out_cap));
    } else if (strcmp(cmd, "clock") == 0 && I64(0, t)) {
        mcu_clock = t;
        printf("OK");
    } else if (strcmp(cmd, "decoder") == 0 && parse_u64(ARG(0), DEC_BUF_MAX, &a)) {
        free(dec_buf);
        dec_buf = malloc((size_t)a);
        jl_decoder_init(&dec, dec_buf, (size_t)a);
        printf("OK");
    } else if ((strcmp(cmd, "decode") == 0 || strcmp(cmd, "rx") == 0) && (n = parse_hex(ARG(0))) >= 0) {
        cmd_decode(bytes, (size_t)n, cmd[0] == 'r');
    } else if (strcmp(cmd, "counters") == 0) {
        printf("frames=%lu crc=%lu cobs=%lu oversize=%lu runt=%lu version=%lu",
               (unsigned long)dec.frames, (unsigned long)dec.crc_errors, (unsigned long)dec.cobs_errors,
               (unsigned long)dec.oversize, (unsigned long)dec.runt, (unsigned long)dec.bad_version);
    } else if (strcmp(cmd, "ring") == 0 && parse_u64(ARG(0), RING_MAX, &a) && U32(1, b)) {
        free(ring_storage);
        forget_fault_texts();
        ring_storage = malloc((size_t)a * sizeof *ring_storage);
        jl_ring_init(&ring, ring_storage, (uint16_t)a, (uint32_t)b);
        tx_after = 0;
        printf("OK");
    } else if (strcmp(cmd, "push") == 0 && U8(0, b) && U8(1, c) && U8(2, d) && U8(3, e) && I64(4, t)) {
        rec.evse_id = (uint8_t)b;
        rec.connector_id = (uint8_t)c;
        rec.signal = (uint8_t)d;
        rec.state = (uint8_t)e;
        rec.time_us = t;
        printf("%lu", (unsigned long)jl_ring_push(&ring, &rec));
    } else if (strcmp(cmd, "ack") == 0 && U32(0, a) && U32(1, b)) {
        printf("%d", jl_ring_ack(&ring, (uint32_t)a, (uint32_t)b) ? 1 : 0);
    } else if (strcmp(cmd, "next") == 0 && U32(0, a)) {
        const jl_record *p = jl_ring_next(&ring, (uint32_t)a);
        if (p == NULL)
            printf("none");
        else
            printf("%lu", (unsigned long)p->seq);
    } else if (strcmp(cmd, "replay") == 0) { /* the whole ring, leaving the cursor alone */
        const jl_record *p;
        uint8_t frame[JL_RECORD_LINE_MAX];
        for (p = jl_ring_next(&ring, 0); p != NULL; p = jl_ring_next(&ring, p->seq))
            print_hex(frame, jl_encode_record(p, frame, sizeof frame));
    } else if (strcmp(cmd, "pump") == 0) {
        tx_len = 0;
        tx_pump();
        print_hex(tx, tx_len);
    } else if (strcmp(cmd, "tick") == 0) {
        tx_len = 0;
        send_keepalive();
        print_hex(tx, tx_len);
    } else if (strcmp(cmd, "sizes") == 0) {
        printf("signal_line=%u level_line=%u ev_status_line=%u fault_line=%u record_line=%u fault_text=%u "
               "keepalive_line=%u clock_reply_line=%u hello_line_0=%u hello_line_255=%u "
               "host_frame=%u max_frame=%u max_body=%u cobs_max_512=%u record=%u",
               (unsigned)JL_SIGNAL_LINE_MAX, (unsigned)JL_LEVEL_LINE_MAX, (unsigned)JL_EV_STATUS_LINE_MAX, (unsigned)JL_FAULT_LINE_MAX,
               (unsigned)JL_RECORD_LINE_MAX, (unsigned)JL_FAULT_TEXT_MAX,
               (unsigned)JL_KEEPALIVE_LINE_MAX, (unsigned)JL_CLOCK_REPLY_LINE_MAX,
               (unsigned)JL_HELLO_LINE_MAX(0), (unsigned)JL_HELLO_LINE_MAX(255),
               (unsigned)JL_HOST_FRAME_MAX, (unsigned)JL_MAX_FRAME, (unsigned)JL_MAX_BODY,
               (unsigned)JL_COBS_MAX_ENCODED(512), (unsigned)sizeof(jl_record));
    } else if (strcmp(cmd, "rstat") == 0) {
        printf("count=%u next=%lu overflowed=%lu tx_after=%lu host_heard=%lu host_time=%lld",
               (unsigned)ring.count, (unsigned long)ring.next_seq, (unsigned long)ring.overflowed,
               (unsigned long)tx_after, (unsigned long)host_heard_ms, (long long)host_time_us);
    } else {
        printf("ERR bad command");
    }
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* one reply per line, seen at once through a pipe */
    outbuf = malloc(out_cap);
    dec_buf = malloc(JL_MAX_FRAME);
    ring_storage = malloc(16 * sizeof *ring_storage);
    if (outbuf == NULL || dec_buf == NULL || ring_storage == NULL)
        return 1;
    jl_decoder_init(&dec, dec_buf, JL_MAX_FRAME);
    jl_ring_init(&ring, ring_storage, 16, 1);
    while (fgets(input, sizeof input, stdin) != NULL) {
        char *cmd, *rest;
        size_t len = strlen(input);
        if (len == 0 || input[len - 1] != '\n') {
            printf("ERR line too long\n");
            return 1;
        }
        input[--len] = '\0';
        cmd = input;
        rest = strchr(input, ' ');
        if (rest != NULL)
            *rest++ = '\0';
        run(cmd, rest);
        putchar('\n');
    }
    return 0;
}
