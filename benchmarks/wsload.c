/* wsload: the native subscriber fleet of benchmarks/realtime.py (`--client native`).

One process, one thread, epoll, non-blocking sockets, no libraries. It opens N WebSocket
subscribers of the `events` collection on a baas server, speaking what the Python client
(`WsConn` in realtime.py) speaks:

  GET /api/realtime (HTTP/1.1 upgrade, no extensions offered: no permessage-deflate), then,
  with --auth-file, the subscriber's line of that file (a complete `{"type":"auth",...}`
  message) and on `auth_ok`, or else at once, {"type":"subscribe","id":"s","collection":"events"};
  masked client frames, unmasked server frames (16/64-bit lengths, fragmented messages,
  frames split across reads, several per read); `{"type":"ping"}` answered with
  `{"type":"pong"}`, ping frames with pong frames, close frames echoed.

It records, for every subscriber and every `seq` 0..planned-1, when the first copy of the change
arrived (CLOCK_REALTIME when its bytes were read, float seconds since a base time: 0 = not yet),
and counts duplicates, unexpected changes, change ids out of order, messages, bytes, server
closes by phase and code, errors, ended subscriptions, other message types, other actions.

Usage:
  wsload --host H --port P --subscribers N --planned M [--connect-rate R]
         [--setup-timeout S] [--auth-file FILE]

It talks to its driver in lines: on stdout `ready {json}` once every subscriber subscribed or
failed; then reads on stdin

  phase <name>                   the phase that server closes are counted under (idle, writes,
                                 drain); loop lag is sampled in writes and drain
  finish <deadline> <file>       <file>: M acknowledgement times then M due times (native doubles,
                                 time.time(); NaN for writes without a 201). Waits until every
                                 live subscriber holds every acknowledged seq or until <deadline>
                                 (time.time()), then prints `result {json}`: the counts and the
                                 latency percentiles over every delivery
  close                          closes every connection (1000), waits up to 5 s for the
                                 server's echoes, prints `closed {}` and exits

and exits on end of input. Diagnostics go to stderr.

Build: gcc -O2 -o wsload wsload.c -lm
*/

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define WS_PATH "/api/realtime"
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
static const char SUBSCRIBE[] = "{\"type\":\"subscribe\",\"id\":\"s\",\"collection\":\"events\"}";
static const char PONG[] = "{\"type\":\"pong\"}";
static const char CHANGES_HEAD[] = "{\"type\":\"changes\",\"changes\":[";

#define READ_CHUNK (256 * 1024)
#define MAX_FRAME ((uint64_t)1 << 30)
#define MAX_HEAD 65536
#define ID_STDIN 0xFFFFFFFFu
#define ID_TIMER 0xFFFFFFFEu
#define TICK_S 0.02 /* loop lag probe: a 20 ms timer, as realtime.py's LagMonitor */
#define MAX_LAG_SAMPLES 200000
#define SAMPLES 5
#define SAMPLE_BYTES 400

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("wsload: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static double clock_s(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
static double mono(void) { return clock_s(CLOCK_MONOTONIC); }
static double wall(void) { return clock_s(CLOCK_REALTIME); }

/* -- growable byte buffers ------------------------------------------------------------------- */

typedef struct {
    uint8_t *p;
    size_t len, cap;
} Buf;

static void buf_reserve(Buf *b, size_t need) {
    if (need <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) cap *= 2;
    b->p = realloc(b->p, cap);
    if (!b->p) die("out of memory");
    b->cap = cap;
}

static void buf_append(Buf *b, const void *data, size_t n) {
    buf_reserve(b, b->len + n + 1);
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void buf_free(Buf *b) {
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

static void buf_printf(Buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    buf_reserve(b, b->len + (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf((char *)b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

static void buf_json_string(Buf *b, const uint8_t *s, size_t n) {
    buf_append(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            buf_append(b, esc, 2);
        } else if (c < 0x20) {
            buf_printf(b, "\\u%04x", c);
        } else {
            buf_append(b, &c, 1);
        }
    }
    buf_append(b, "\"", 1);
}

static void buf_double(Buf *b, double x, int decimals) { /* JSON has no NaN: null */
    if (isnan(x) || isinf(x))
        buf_printf(b, "null");
    else
        buf_printf(b, "%.*f", decimals, x);
}

/* -- counters by name (reasons, codes, types) ------------------------------------------------ */

#define COUNTER_CAP 64
#define NAME_MAX_LEN 240

typedef struct {
    char *name[COUNTER_CAP];
    uint64_t count[COUNTER_CAP];
    int n;
} Counter;

static void count_name(Counter *c, const char *name, size_t len) {
    if (len > NAME_MAX_LEN) len = NAME_MAX_LEN;
    for (int i = 0; i < c->n; i++) {
        if (strlen(c->name[i]) == len && memcmp(c->name[i], name, len) == 0) {
            c->count[i]++;
            return;
        }
    }
    if (c->n == COUNTER_CAP - 1) { /* the last slot gathers what does not fit */
        name = "<other names>";
        len = strlen(name);
        for (int i = 0; i < c->n; i++)
            if (strcmp(c->name[i], name) == 0) {
                c->count[i]++;
                return;
            }
    }
    if (c->n >= COUNTER_CAP) return;
    c->name[c->n] = strndup(name, len);
    c->count[c->n] = 1;
    c->n++;
}

static void count_str(Counter *c, const char *name) { count_name(c, name, strlen(name)); }

static void count_fmt(Counter *c, const char *fmt, ...) {
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    if ((size_t)n >= sizeof text) n = sizeof text - 1;
    while (n > 0 && text[n - 1] == ' ') n--; /* rstrip */
    count_name(c, text, (size_t)n);
}

static void buf_counter(Buf *b, const Counter *c) {
    buf_append(b, "{", 1);
    for (int i = 0; i < c->n; i++) {
        if (i) buf_append(b, ",", 1);
        buf_json_string(b, (const uint8_t *)c->name[i], strlen(c->name[i]));
        buf_printf(b, ":%llu", (unsigned long long)c->count[i]);
    }
    buf_append(b, "}", 1);
}

/* -- SHA-1 and base64, for the handshake ----------------------------------------------------- */

static uint32_t rol(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

static void sha1(const uint8_t *data, size_t len, uint8_t out[20]) {
    uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    size_t total = ((len + 8) / 64 + 1) * 64;
    uint8_t msg[256];
    if (total > sizeof msg) die("sha1: input too long");
    memset(msg, 0, total);
    memcpy(msg, data, len);
    msg[len] = 0x80;
    uint64_t bits = (uint64_t)len * 8;
    for (int i = 0; i < 8; i++) msg[total - 1 - i] = (uint8_t)(bits >> (8 * i));
    for (size_t off = 0; off < total; off += 64) {
        uint32_t w[80];
        for (int i = 0; i < 16; i++)
            w[i] = (uint32_t)msg[off + 4 * i] << 24 | (uint32_t)msg[off + 4 * i + 1] << 16 |
                   (uint32_t)msg[off + 4 * i + 2] << 8 | msg[off + 4 * i + 3];
        for (int i = 16; i < 80; i++) w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
        uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
        for (int i = 0; i < 80; i++) {
            uint32_t f, k;
            if (i < 20) f = (b & c) | (~b & d), k = 0x5A827999;
            else if (i < 40) f = b ^ c ^ d, k = 0x6ED9EBA1;
            else if (i < 60) f = (b & c) | (b & d) | (c & d), k = 0x8F1BBCDC;
            else f = b ^ c ^ d, k = 0xCA62C1D6;
            uint32_t t = rol(a, 5) + f + e + k + w[i];
            e = d, d = c, c = rol(b, 30), b = a, a = t;
        }
        h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
    }
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 4; j++) out[4 * i + j] = (uint8_t)(h[i] >> (24 - 8 * j));
}

static void base64(const uint8_t *in, size_t n, char *out) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n) v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n) v |= in[i + 2];
        out[o++] = tab[(v >> 18) & 63];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? tab[v & 63] : '=';
    }
    out[o] = 0;
}

static uint64_t rng_state;
static uint32_t rnd32(void) { /* xorshift64*: masks and keys need no cryptography here */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545F4914F6CDD1DULL) >> 32);
}

/* -- minimal JSON walking (no unescaping: orjson's compact output) ---------------------------- */

static const uint8_t *ws(const uint8_t *p, const uint8_t *e) {
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

/* p at the opening quote: after the closing one, or NULL (memchr: long strings are cheap) */
static const uint8_t *skip_string(const uint8_t *p, const uint8_t *e) {
    const uint8_t *s = ++p;
    for (;;) {
        const uint8_t *q = memchr(p, '"', (size_t)(e - p));
        if (!q) return NULL;
        const uint8_t *b = q;
        while (b > s && b[-1] == '\\') b--;
        if (((q - b) & 1) == 0) return q + 1; /* not escaped */
        p = q + 1;
    }
}

static const uint8_t *skip_value(const uint8_t *p, const uint8_t *e) {
    if (p >= e) return NULL;
    if (*p == '"') return skip_string(p, e);
    if (*p == '{' || *p == '[') {
        int depth = 0;
        while (p < e) {
            uint8_t c = *p;
            if (c == '"') {
                p = skip_string(p, e);
                if (!p) return NULL;
                continue;
            }
            if (c == '{' || c == '[') depth++;
            else if (c == '}' || c == ']') {
                if (--depth == 0) return p + 1;
            }
            p++;
        }
        return NULL;
    }
    while (p < e && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\n' &&
           *p != '\r' && *p != '\t')
        p++;
    return p;
}

/* An integer value (no fraction, no exponent): where it ends, and *out; else NULL */
static const uint8_t *parse_int(const uint8_t *p, const uint8_t *e, int64_t *out) {
    int neg = 0;
    if (p < e && *p == '-') neg = 1, p++;
    if (p >= e || (unsigned)(*p - '0') > 9) return NULL;
    int64_t v = 0;
    while (p < e && (unsigned)(*p - '0') <= 9) v = v * 10 + (*p++ - '0');
    if (p < e && (*p == '.' || *p == 'e' || *p == 'E')) return NULL;
    *out = neg ? -v : v;
    return p;
}

typedef struct { /* one object member's key */
    const uint8_t *key;
    size_t keylen;
    const uint8_t *value; /* its first byte */
} Member;

/* Iterate an object's members, from p at '{'. next_member: 1 with a member, 0 after the
   closing brace (it->p just past it), -1 if malformed. The next call skips the member's value
   unless the caller read it and called consumed() with where it ends: one pass over the text. */
typedef struct {
    const uint8_t *p, *e;
    int started;
    const uint8_t *pending; /* the value of the member last returned, not yet skipped */
} ObjIter;

static void consumed(ObjIter *it, const uint8_t *after) {
    it->pending = NULL;
    it->p = after;
}

static int next_member(ObjIter *it, Member *m) {
    const uint8_t *p = it->p, *e = it->e;
    if (!it->started) {
        p = ws(p, e);
        if (p >= e || *p != '{') return -1;
        p++;
        it->started = 1;
    } else {
        if (it->pending) {
            p = skip_value(it->pending, e);
            it->pending = NULL;
            if (!p) return -1;
        }
        p = ws(p, e);
        if (p < e && *p == ',') p++;
    }
    p = ws(p, e);
    if (p >= e) return -1;
    if (*p == '}') {
        it->p = p + 1;
        return 0;
    }
    if (*p != '"') return -1;
    const uint8_t *k = p + 1, *q = k;
    while (q < e && *q != '"' && *q != '\\') q++; /* keys are short and plain */
    if (q < e && *q == '"') p = q + 1;
    else if (!(p = skip_string(p, e))) return -1;
    m->key = k;
    m->keylen = (size_t)(p - 1 - k);
    p = ws(p, e);
    if (p >= e || *p != ':') return -1;
    p = ws(p + 1, e);
    if (p >= e) return -1;
    m->value = p;
    it->pending = p;
    it->p = p;
    return 1;
}

#define key_is(m, name) ((m)->keylen == sizeof(name) - 1 && !memcmp((m)->key, name, sizeof(name) - 1))

/* Python's str() of a member's value as realtime.py shows it: a string's contents, another
   value's text, "None" when absent */
static void value_text(const uint8_t *v, const uint8_t *e, const uint8_t **s, size_t *n) {
    if (!v) {
        *s = (const uint8_t *)"None";
        *n = 4;
        return;
    }
    if (*v == '"') {
        const uint8_t *end = skip_string(v, e);
        *s = v + 1;
        *n = end ? (size_t)(end - 1 - (v + 1)) : (size_t)(e - v - 1);
        return;
    }
    const uint8_t *end = skip_value(v, e);
    *s = v;
    *n = end ? (size_t)(end - v) : (size_t)(e - v);
    if (*n == 4 && memcmp(v, "null", 4) == 0) *s = (const uint8_t *)"None";
}

/* -- connections ----------------------------------------------------------------------------- */

enum { ST_NEW, ST_CONNECT, ST_HANDSHAKE, ST_AUTH, ST_SUBSCRIBE, ST_SUBSCRIBED };
static const char *STAGE[] = {"connect", "connect", "handshake", "auth", "subscribe", "subscribed"};

typedef struct {
    int fd;
    uint32_t index;
    uint8_t stage;
    uint8_t upgraded, subscribed, ended, closed, closing, failed, in_set;
    uint8_t frag_active, frag_opcode, want_out;
    uint16_t close_code;
    double started; /* monotonic: connect() */
    int64_t last_change_id;
    uint32_t got, dups, unexpected, out_of_order;
    uint64_t messages, changes, received_bytes;
    double last_receipt;
    char key[25];
    Buf in;   /* the handshake answer so far, or an incomplete frame */
    Buf frag; /* a fragmented message so far */
    Buf out;  /* bytes the socket did not take yet */
} Conn;

static struct {
    const char *host;
    int port;
    uint32_t n;
    uint32_t planned;
    double connect_rate;
    double setup_timeout;
    const char *auth_file;
} cfg = {"127.0.0.1", 0, 0, 0, 500, 60, NULL};

static Conn *conns;
static float *times; /* conns x planned: receipt - base, seconds; 0 = not received */
static double base;  /* CLOCK_REALTIME */
static struct sockaddr_storage addr;
static socklen_t addrlen;
static char request_head[512]; /* the upgrade request up to its key */
static const char REQUEST_TAIL[] = "\r\nSec-WebSocket-Version: 13\r\n\r\n";
static Buf auth_lines;
static size_t *auth_off, *auth_len;
static size_t auth_count;
static int ep, timer_fd;
static uint8_t *rb; /* the read buffer, shared by every connection */
static size_t rbcap;

static Counter failures, closes, errors, ended, other, actions;
static Buf error_samples[SAMPLES], unexpected_samples[SAMPLES];
static int n_error_samples, n_unexpected_samples;
static uint64_t pings, ws_pings;
static char phase[32] = "setup";
static int lag_active;
static double *lag_ms;
static size_t n_lag;
static double tick_due;

static void set_events(Conn *c, uint32_t events) {
    struct epoll_event ev = {.events = events, .data.u32 = c->index};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0) die("epoll_ctl MOD: %s", strerror(errno));
}

static void close_fd(Conn *c) {
    if (c->fd >= 0) {
        close(c->fd); /* leaves the epoll set too */
        c->fd = -1;
    }
    buf_free(&c->out);
    buf_free(&c->frag);
    buf_free(&c->in);
}

static int setup_done(const Conn *c) { return c->subscribed || c->failed; }

static void fail(Conn *c, const char *fmt, ...) {
    if (setup_done(c)) return; /* only the first reason of a subscriber that never subscribed */
    c->failed = 1;
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    count_fmt(&failures, "%s", text);
}

static void abort_conn(Conn *c, const char *reason) {
    c->closed = 1;
    c->closing = 1;
    close_fd(c);
    fail(c, "%s", reason);
}

static void conn_lost(Conn *c) { /* end of stream or a socket error, no close frame */
    if (!c->closed) {
        c->closed = 1;
        if (!c->closing) {
            c->close_code = 1006;
            count_fmt(&closes, "%s 1006", phase);
        }
    }
    close_fd(c);
    fail(c, "connection lost during %s (no close frame)", STAGE[c->stage]);
}

static void send_raw(Conn *c, const uint8_t *d, size_t n) {
    if (c->fd < 0) return;
    if (c->out.len == 0) {
        ssize_t w = send(c->fd, d, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK) return; /* epoll reports the error */
            w = 0;
        }
        d += w;
        n -= (size_t)w;
        if (n == 0) return;
    }
    buf_append(&c->out, d, n);
    if (!c->want_out) {
        c->want_out = 1;
        set_events(c, EPOLLIN | EPOLLOUT);
    }
}

static void flush_out(Conn *c) {
    while (c->out.len) {
        ssize_t w = send(c->fd, c->out.p, c->out.len, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            c->out.len = 0; /* the read side sees the error */
            break;
        }
        memmove(c->out.p, c->out.p + w, c->out.len - (size_t)w);
        c->out.len -= (size_t)w;
    }
    if (c->want_out && c->fd >= 0) {
        c->want_out = 0;
        set_events(c, EPOLLIN);
    }
}

/* A masked client frame: `first` is FIN + opcode */
static void send_frame(Conn *c, uint8_t first, const void *payload, size_t n) {
    uint8_t stack[4096], *f = stack;
    if (n + 14 > sizeof stack) f = malloc(n + 14);
    if (!f) die("out of memory");
    size_t h = 0;
    f[h++] = first;
    if (n < 126) {
        f[h++] = (uint8_t)(0x80 | n);
    } else if (n < 65536) {
        f[h++] = 0x80 | 126;
        f[h++] = (uint8_t)(n >> 8);
        f[h++] = (uint8_t)n;
    } else {
        f[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--) f[h++] = (uint8_t)((uint64_t)n >> (8 * i));
    }
    uint32_t m = rnd32();
    uint8_t *mask = f + h;
    memcpy(mask, &m, 4);
    h += 4;
    const uint8_t *src = payload;
    for (size_t i = 0; i < n; i++) f[h + i] = src[i] ^ mask[i & 3];
    send_raw(c, f, h + n);
    if (f != stack) free(f);
}

static void send_text(Conn *c, const void *text, size_t n) { send_frame(c, 0x81, text, n); }

static void start_connect(Conn *c) {
    c->started = mono();
    c->stage = ST_CONNECT;
    int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        c->closed = 1;
        fail(c, "connect: %s", strerror(errno));
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->fd = fd;
    if (connect(fd, (struct sockaddr *)&addr, addrlen) < 0 && errno != EINPROGRESS) {
        int err = errno;
        c->closed = 1;
        close_fd(c);
        fail(c, "connect: %s", strerror(err));
        return;
    }
    struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = c->index};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl ADD: %s", strerror(errno));
}

static void connected(Conn *c) {
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
    if (err) {
        c->closed = 1;
        close_fd(c);
        fail(c, "connect: %s", strerror(err));
        return;
    }
    c->stage = ST_HANDSHAKE;
    uint8_t raw[16];
    for (int i = 0; i < 16; i += 4) {
        uint32_t r = rnd32();
        memcpy(raw + i, &r, 4);
    }
    base64(raw, 16, c->key);
    char req[sizeof request_head + sizeof c->key + sizeof REQUEST_TAIL];
    int n = snprintf(req, sizeof req, "%s%s%s", request_head, c->key, REQUEST_TAIL);
    set_events(c, EPOLLIN);
    send_raw(c, (const uint8_t *)req, (size_t)n);
}

/* -- what the server sends ------------------------------------------------------------------- */

static void sample(Buf *samples, int *count, const uint8_t *text, size_t n) {
    if (*count >= SAMPLES) return;
    if (n > SAMPLE_BYTES) n = SAMPLE_BYTES;
    buf_append(&samples[*count], text, n);
    (*count)++;
}

static void note_unexpected(Conn *c, const uint8_t *start, const uint8_t *end) {
    c->unexpected++;
    sample(unexpected_samples, &n_unexpected_samples, start, (size_t)(end - start));
}

/* A change with its change_id and record seq (seq_int: an integer) */
static void counted(Conn *c, int64_t cid, int seq_int, int64_t seq, float receipt,
                    const uint8_t *start, const uint8_t *end) {
    if (cid <= c->last_change_id) c->out_of_order++;
    else c->last_change_id = cid;
    if (seq_int && seq >= 0 && seq < (int64_t)cfg.planned) {
        float *t = &times[(size_t)c->index * cfg.planned + (size_t)seq];
        if (*t != 0) {
            c->dups++;
        } else {
            *t = receipt;
            c->got++;
        }
    } else {
        note_unexpected(c, start, end);
    }
}

#define HAS(p, e, lit) ((size_t)((e) - (p)) >= sizeof(lit) - 1 && !memcmp(p, lit, sizeof(lit) - 1))

/* The server's own layout of a created record's change, checked as it goes:
   {"sub":"..","change_id":N,"action":"create","collection":"..","record":{..,"seq":N,..}}
   (orjson, compact, keys in this order) followed by `,{"sub":"` or by the message's `]}`.
   In JSON text a quote that is not escaped delimits a string, so `"seq":` is a key named seq;
   with no `{` in the record before it, it is the record's own, and with no `{` or `}` after
   it up to `}}`, that closes the record and the entry. Where the entry ends, or NULL when it
   is laid out otherwise (or a string holds a brace): the general walker then reads it.
   memchr finds the rare bytes: `q` (of seq) and `}`. */
static const uint8_t *fast_change(Conn *c, const uint8_t *p, const uint8_t *e, float receipt) {
    const uint8_t *q = p, *s = NULL, *after, *end;
    int64_t cid, seq;
    if (!HAS(q, e, "{\"sub\":\"") || !(q = skip_string(q + 7, e))) return NULL;
    if (!HAS(q, e, ",\"change_id\":") || !(q = parse_int(q + 13, e, &cid))) return NULL;
    if (!HAS(q, e, ",\"action\":\"create\",\"collection\":\"")) return NULL;
    if (!(q = skip_string(q + 32, e)) || !HAS(q, e, ",\"record\":{")) return NULL;
    q += 11;
    for (const uint8_t *x = q + 3; x < e && (x = memchr(x, 'q', (size_t)(e - x))); x++) {
        if (HAS(x - 3, e, "\"seq\":") && x[-4] != '\\') {
            s = x - 3;
            break;
        }
    }
    if (!s || memchr(q, '{', (size_t)(s - q)) || !(after = parse_int(s + 6, e, &seq)))
        return NULL;
    end = memchr(after, '}', (size_t)(e - after));
    if (!end || memchr(after, '{', (size_t)(end - after)) || !HAS(end, e, "}}")) return NULL;
    end += 2;
    if (!HAS(end, e, ",{\"sub\":\"") && !(end == e - 2 && HAS(end, e, "]}"))) return NULL;
    c->changes++;
    counted(c, cid, 1, seq, receipt, p, end);
    return end;
}

/* One element of a `changes` array, at p, in one pass; returns where it ends (NULL:
   malformed) */
static const uint8_t *change(Conn *c, const uint8_t *p, const uint8_t *e, float receipt) {
    c->changes++;
    if (*p != '{') { /* realtime.py: change["record"] raises TypeError -> unexpected */
        const uint8_t *end = skip_value(p, e);
        if (end) note_unexpected(c, p, end);
        return end;
    }
    int has_cid = 0, cid_int = 0, has_record = 0, has_seq = 0, seq_int = 0, has_action = 0;
    int64_t cid = 0, seq = 0;
    const uint8_t *action = NULL, *after;
    ObjIter it = {p, e, 0, NULL};
    Member m;
    int r;
    while ((r = next_member(&it, &m)) == 1) {
        if (key_is(&m, "change_id")) {
            has_cid = 1;
            if ((after = parse_int(m.value, e, &cid))) cid_int = 1, consumed(&it, after);
        } else if (key_is(&m, "action")) {
            has_action = 1;
            action = m.value;
        } else if (key_is(&m, "record") && *m.value == '{') {
            has_record = 1;
            ObjIter rec = {m.value, e, 0, NULL};
            Member f;
            int rr;
            while ((rr = next_member(&rec, &f)) == 1) {
                if (key_is(&f, "seq")) {
                    has_seq = 1;
                    if ((after = parse_int(f.value, e, &seq))) seq_int = 1, consumed(&rec, after);
                }
            }
            if (rr < 0) return NULL;
            consumed(&it, rec.p);
        }
    }
    if (r < 0) return NULL; /* malformed: the rest of the message is not counted */
    const uint8_t *end = it.p;
    if (!has_record || !has_seq || !has_cid || !cid_int) {
        note_unexpected(c, p, end);
        return end;
    }
    const uint8_t *s;
    size_t n;
    value_text(has_action ? action : NULL, end, &s, &n);
    int create = n == 6 && memcmp(s, "create", 6) == 0;
    if (!create) count_name(&actions, (const char *)s, n);
    counted(c, cid, seq_int, seq, receipt, p, end);
    return end;
}

static void changes(Conn *c, const uint8_t *p, const uint8_t *e, double now) {
    c->messages++;
    c->last_receipt = now;
    float receipt = (float)(now - base);
    p = ws(p, e);
    if (p >= e || *p != '[') return; /* "changes" not a list: nothing to count */
    p++;
    for (;;) {
        p = ws(p, e);
        if (p >= e || *p == ']') return;
        const uint8_t *next = fast_change(c, p, e, receipt);
        p = next ? next : change(c, p, e, receipt);
        if (!p) return;
        p = ws(p, e);
        if (p < e && *p == ',') p++;
    }
}

static void message(Conn *c, const uint8_t *p, size_t n, double now) {
    const uint8_t *e = p + n;
    size_t head = sizeof CHANGES_HEAD - 1;
    if (n > head && memcmp(p, CHANGES_HEAD, head) == 0) { /* the server's own framing */
        changes(c, p + head - 1, e, now);
        return;
    }
    const uint8_t *type = NULL, *code = NULL, *text = NULL, *reason = NULL, *list = NULL;
    ObjIter it = {p, e, 0, NULL};
    Member m;
    int r;
    while ((r = next_member(&it, &m)) == 1) {
        if (key_is(&m, "type")) type = m.value;
        else if (key_is(&m, "code")) code = m.value;
        else if (key_is(&m, "message")) text = m.value;
        else if (key_is(&m, "reason")) reason = m.value;
        else if (key_is(&m, "changes")) list = m.value;
    }
    if (r < 0) {
        count_str(&other, "<not a JSON object>");
        return;
    }
    const uint8_t *kind;
    size_t kn;
    value_text(type, e, &kind, &kn);
#define KIND(s) (kn == sizeof(s) - 1 && memcmp(kind, s, kn) == 0)
    if (KIND("changes")) {
        if (list) changes(c, list, e, now);
        else c->messages++, c->last_receipt = now;
    } else if (KIND("ping")) {
        pings++;
        send_text(c, PONG, sizeof PONG - 1);
    } else if (KIND("subscribed")) {
        c->subscribed = 1;
        c->stage = ST_SUBSCRIBED;
    } else if (KIND("auth_ok")) {
        c->stage = ST_SUBSCRIBE;
        send_text(c, SUBSCRIBE, sizeof SUBSCRIBE - 1);
    } else if (KIND("error")) {
        const uint8_t *cs, *ms;
        size_t cn, mn;
        value_text(code, e, &cs, &cn);
        value_text(text, e, &ms, &mn);
        count_name(&errors, (const char *)cs, cn);
        sample(error_samples, &n_error_samples, p, n);
        fail(c, "error during %s: %.*s: %.*s", STAGE[c->stage], (int)cn, cs, (int)mn, ms);
    } else if (KIND("unsubscribed")) {
        const uint8_t *rs;
        size_t rn;
        value_text(reason, e, &rs, &rn);
        c->ended = 1;
        count_name(&ended, (const char *)rs, rn);
        fail(c, "unsubscribed by the server during %s: %.*s", STAGE[c->stage], (int)rn, rs);
    } else {
        count_name(&other, (const char *)kind, kn);
    }
#undef KIND
}

static void close_received(Conn *c, const uint8_t *p, size_t n) {
    unsigned code = n >= 2 ? (unsigned)p[0] << 8 | p[1] : 1005;
    c->close_code = (uint16_t)code;
    if (!c->closing) {
        count_fmt(&closes, "%s %u", phase, code);
        send_frame(c, 0x88, p, n >= 2 ? 2 : n); /* echo the close */
    }
    c->closed = 1;
    close_fd(c);
    fail(c, "closed by the server during %s: %u %.*s", STAGE[c->stage], code,
         n > 2 ? (int)(n - 2) : 0, n > 2 ? (const char *)p + 2 : "");
}

static void frame(Conn *c, uint8_t b0, const uint8_t *p, size_t n, double now) {
    unsigned opcode = b0 & 0x0F;
    if (opcode >= 8) { /* control frames: never fragmented */
        if (opcode == 9) {
            ws_pings++;
            send_frame(c, 0x8A, p, n);
        } else if (opcode == 8) {
            close_received(c, p, n);
        } else if (opcode != 10) {
            char why[64];
            snprintf(why, sizeof why, "protocol: unknown control opcode %u", opcode);
            abort_conn(c, why);
        }
        return;
    }
    if (b0 & 0x70) {
        abort_conn(c, "protocol: a compressed frame without permessage-deflate");
        return;
    }
    if (opcode == 0) {
        if (!c->frag_active) {
            abort_conn(c, "protocol: continuation frame without a first frame");
            return;
        }
        buf_append(&c->frag, p, n);
        if (!(b0 & 0x80)) return;
        c->frag_active = 0;
        opcode = c->frag_opcode;
        if (opcode == 2) count_str(&other, "<binary frame>");
        else message(c, c->frag.p, c->frag.len, now);
        c->frag.len = 0;
        return;
    }
    if (!(b0 & 0x80)) {
        c->frag_active = 1;
        c->frag_opcode = (uint8_t)opcode;
        c->frag.len = 0;
        buf_append(&c->frag, p, n);
        return;
    }
    if (opcode == 2) {
        count_str(&other, "<binary frame>");
        return;
    }
    message(c, p, n, now);
}

/* The frames in rb[off..n); keeps an incomplete one for the next read */
static void frames(Conn *c, size_t off, size_t n, double now) {
    size_t pos = off;
    while (n - pos >= 2) {
        uint8_t b0 = rb[pos], b1 = rb[pos + 1];
        uint64_t len = b1 & 0x7F;
        size_t start;
        if (len < 126) {
            start = pos + 2;
        } else if (len == 126) {
            if (n - pos < 4) break;
            len = (uint64_t)rb[pos + 2] << 8 | rb[pos + 3];
            start = pos + 4;
        } else {
            if (n - pos < 10) break;
            len = 0;
            for (int i = 0; i < 8; i++) len = len << 8 | rb[pos + 2 + i];
            start = pos + 10;
        }
        if (b1 & 0x80) {
            abort_conn(c, "protocol: the server masked a frame");
            return;
        }
        if (len > MAX_FRAME) {
            abort_conn(c, "protocol: a frame over 1 GB");
            return;
        }
        if (start + len > n) break;
        frame(c, b0, rb + start, (size_t)len, now);
        if (c->fd < 0) return;
        pos = start + (size_t)len;
    }
    c->in.len = 0;
    if (pos < n) buf_append(&c->in, rb + pos, n - pos);
}

static const char *header_value(const char *head, const char *name, size_t *vlen) {
    size_t nl = strlen(name);
    const char *found = NULL; /* the last one, as a dict would keep */
    for (const char *line = strstr(head, "\r\n"); line; line = strstr(line, "\r\n")) {
        line += 2;
        if (strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (*v == ' ' || *v == '\t') v++;
            const char *end = strstr(v, "\r\n");
            if (!end) end = v + strlen(v);
            while (end > v && (end[-1] == ' ' || end[-1] == '\t')) end--;
            found = v;
            *vlen = (size_t)(end - v);
        }
    }
    return found;
}

/* The upgrade answer in rb[0..n): the offset of the first frame byte, 0 for more to read,
   -1 when the connection was dropped */
static ssize_t handshake(Conn *c, size_t n) {
    uint8_t *end = memmem(rb, n, "\r\n\r\n", 4);
    if (!end) {
        if (n > MAX_HEAD) {
            abort_conn(c, "handshake: response headers too long");
            return -1;
        }
        return 0;
    }
    size_t headlen = (size_t)(end - rb);
    char *head = malloc(headlen + 3);
    if (!head) die("out of memory");
    memcpy(head, rb, headlen);
    memcpy(head + headlen, "\r\n", 3); /* every header line ends in CRLF */
    const char *sp = strchr(head, ' ');
    const char *eol = strstr(head, "\r\n");
    if (!sp || sp > eol || strncmp(sp + 1, "101", 3) != 0 || (sp[4] != ' ' && sp + 4 != eol)) {
        char why[300];
        if (sp && sp < eol)
            snprintf(why, sizeof why, "handshake: HTTP %.*s", (int)(eol - sp - 1), sp + 1);
        else snprintf(why, sizeof why, "handshake: HTTP '%.*s'", (int)(eol - head), head);
        free(head);
        abort_conn(c, why);
        return -1;
    }
    char joined[64], accept[32];
    uint8_t digest[20];
    int jn = snprintf(joined, sizeof joined, "%s%s", c->key, WS_GUID);
    sha1((const uint8_t *)joined, (size_t)jn, digest);
    base64(digest, 20, accept);
    size_t vlen = 0;
    const char *v = header_value(head, "sec-websocket-accept", &vlen);
    if (!v || vlen != strlen(accept) || memcmp(v, accept, vlen) != 0) {
        free(head);
        abort_conn(c, "handshake: wrong Sec-WebSocket-Accept");
        return -1;
    }
    v = header_value(head, "sec-websocket-extensions", &vlen);
    if (v && vlen) {
        char why[300];
        snprintf(why, sizeof why, "handshake: extensions not offered: %.*s", (int)vlen, v);
        free(head);
        abort_conn(c, why);
        return -1;
    }
    free(head);
    c->upgraded = 1;
    if (auth_count) {
        c->stage = ST_AUTH;
        size_t k = c->index % auth_count;
        send_text(c, auth_lines.p + auth_off[k], auth_len[k]);
    } else {
        c->stage = ST_SUBSCRIBE;
        send_text(c, SUBSCRIBE, sizeof SUBSCRIBE - 1);
    }
    return (ssize_t)(headlen + 4);
}

static void readable(Conn *c) {
    size_t have = c->in.len;
    if (rbcap < have + READ_CHUNK) {
        rbcap = have + READ_CHUNK;
        rb = realloc(rb, rbcap);
        if (!rb) die("out of memory");
    }
    ssize_t r = recv(c->fd, rb + have, rbcap - have, 0);
    if (r < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
        conn_lost(c);
        return;
    }
    if (r == 0) {
        conn_lost(c);
        return;
    }
    double now = wall();
    if (have) memcpy(rb, c->in.p, have);
    size_t n = have + (size_t)r;
    size_t off = 0;
    if (!c->upgraded) {
        ssize_t got = handshake(c, n);
        if (got < 0) return;
        if (got == 0) {
            c->in.len = 0;
            buf_append(&c->in, rb, n);
            return;
        }
        off = (size_t)got;
        c->received_bytes += n - off;
    } else {
        c->received_bytes += (size_t)r;
    }
    frames(c, off, n, now);
}

/* -- the driver's commands ------------------------------------------------------------------- */

static double *acks, *dues;
static int finishing, closing_all, ready_sent;
static size_t drain_target; /* acknowledged writes */
static double finish_deadline, close_deadline, setup_started;
static uint32_t started_count;

static void load_acks(const char *path) {
    size_t m = cfg.planned;
    FILE *f = fopen(path, "rb");
    if (!f) die("finish: %s: %s", path, strerror(errno));
    acks = calloc(m ? m : 1, sizeof(double));
    dues = calloc(m ? m : 1, sizeof(double));
    if (!acks || !dues) die("out of memory");
    if (fread(acks, sizeof(double), m, f) != m || fread(dues, sizeof(double), m, f) != m)
        die("finish: %s holds fewer than %zu acks and due times", path, m);
    fclose(f);
}

static void command(char *line) {
    if (strncmp(line, "phase ", 6) == 0) {
        snprintf(phase, sizeof phase, "%s", line + 6);
        lag_active = strcmp(phase, "writes") == 0 || strcmp(phase, "drain") == 0;
    } else if (strncmp(line, "finish ", 7) == 0) {
        char *rest;
        finish_deadline = strtod(line + 7, &rest);
        while (*rest == ' ') rest++;
        load_acks(rest);
        drain_target = 0;
        for (size_t s = 0; s < cfg.planned; s++) drain_target += !isnan(acks[s]);
        finishing = 1;
    } else if (strcmp(line, "close") == 0) {
        snprintf(phase, sizeof phase, "closing");
        for (uint32_t i = 0; i < cfg.n; i++) {
            Conn *c = &conns[i];
            if (c->fd >= 0 && !c->closed && !c->closing) {
                c->closing = 1;
                uint8_t code[2] = {1000 >> 8, 1000 & 0xFF};
                send_frame(c, 0x88, code, 2);
            }
        }
        closing_all = 1;
        close_deadline = mono() + 5;
    } else if (*line) {
        fprintf(stderr, "wsload: unknown command: %s\n", line);
    }
}

static Buf stdin_buf;

static void stdin_readable(void) {
    char chunk[4096];
    ssize_t r = read(0, chunk, sizeof chunk);
    if (r < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (r <= 0) exit(0); /* the driver went away */
    buf_append(&stdin_buf, chunk, (size_t)r);
    for (;;) {
        uint8_t *nl = memchr(stdin_buf.p, '\n', stdin_buf.len);
        if (!nl) break;
        *nl = 0;
        size_t used = (size_t)(nl - stdin_buf.p) + 1;
        char *line = strdup((char *)stdin_buf.p);
        memmove(stdin_buf.p, stdin_buf.p + used, stdin_buf.len - used);
        stdin_buf.len -= used;
        command(line);
        free(line);
    }
}

static void emit(const char *kind, Buf *json) {
    fputs(kind, stdout);
    fputc(' ', stdout);
    fwrite(json->p, 1, json->len, stdout);
    fputc('\n', stdout);
    fflush(stdout);
}

/* -- the tally ------------------------------------------------------------------------------- */

static float select_k(float *a, ptrdiff_t n, ptrdiff_t k) { /* quickselect: a[k] in place */
    ptrdiff_t lo = 0, hi = n - 1;
    while (lo < hi) {
        float x = a[lo], y = a[lo + (hi - lo) / 2], z = a[hi];
        float pivot = x < y ? (y < z ? y : (x < z ? z : x)) : (x < z ? x : (y < z ? z : y));
        ptrdiff_t i = lo, j = hi;
        while (i <= j) {
            while (a[i] < pivot) i++;
            while (a[j] > pivot) j--;
            if (i <= j) {
                float t = a[i];
                a[i] = a[j];
                a[j] = t;
                i++;
                j--;
            }
        }
        if (k <= j) hi = j;
        else if (k >= i) lo = i;
        else return a[k];
    }
    return a[k];
}

/* realtime.py's percentiles(): nearest rank, plus min and max, rounded to 0.01 */
static void buf_percentiles(Buf *b, float *a, size_t n, const double *points, int np) {
    if (!n) {
        for (int i = 0; i < np; i++) buf_printf(b, "\"p%g\":null,", points[i]);
        buf_printf(b, "\"min\":null,\"max\":null");
        return;
    }
    float lo = a[0], hi = a[0];
    for (size_t i = 1; i < n; i++) {
        if (a[i] < lo) lo = a[i];
        if (a[i] > hi) hi = a[i];
    }
    size_t from = 0; /* the points are ascending: each select narrows the next */
    for (int i = 0; i < np; i++) {
        double r = ceil(points[i] / 100 * (double)n);
        size_t rank = r < 1 ? 1 : (size_t)r;
        float v = select_k(a + from, (ptrdiff_t)(n - from), (ptrdiff_t)(rank - 1 - from));
        from = rank - 1;
        buf_printf(b, "\"p%g\":%.2f,", points[i], round((double)v * 100) / 100);
    }
    buf_printf(b, "\"min\":%.2f,\"max\":%.2f", round((double)lo * 100) / 100,
               round((double)hi * 100) / 100);
}

static void tally(void) {
    size_t m = cfg.planned;
    size_t target = 0;
    for (size_t s = 0; s < m; s++) target += !isnan(acks[s]);
    uint64_t delivered = 0, lost = 0, incomplete = 0, lost_on_closed = 0, unacked = 0;
    uint64_t closed_subs = 0, ended_subs = 0, dups = 0, unexpected = 0, out_of_order = 0;
    uint64_t msgs = 0, chs = 0, bytes = 0, subscribed = 0, negative = 0;
    double last_receipt = 0;
    for (uint32_t i = 0; i < cfg.n; i++) {
        Conn *c = &conns[i];
        bytes += c->received_bytes;
        if (!c->in_set) continue;
        subscribed++;
        delivered += c->got;
        dups += c->dups;
        unexpected += c->unexpected;
        out_of_order += c->out_of_order;
        msgs += c->messages;
        chs += c->changes;
        closed_subs += c->closed;
        ended_subs += c->ended;
        if (c->last_receipt > last_receipt) last_receipt = c->last_receipt;
    }
    float *lat = malloc(sizeof(float) * (delivered ? delivered : 1));
    double *slowest = malloc(sizeof(double) * (m ? m : 1));
    if (!lat || !slowest) die("out of memory");
    for (size_t s = 0; s < m; s++) slowest[s] = NAN;
    size_t k = 0;
    for (uint32_t i = 0; i < cfg.n; i++) {
        Conn *c = &conns[i];
        if (!c->in_set) continue;
        const float *t = times + (size_t)i * m;
        size_t have = 0;
        for (size_t s = 0; s < m; s++) {
            if (t[s] == 0) continue;
            if (isnan(acks[s])) {
                unacked++;
                continue;
            }
            have++;
            double ms = ((double)t[s] + base - acks[s]) * 1000;
            lat[k++] = (float)ms;
            negative += ms < 0;
            if (!(ms <= slowest[s])) slowest[s] = ms;
        }
        if (have < target) {
            incomplete++;
            lost += target - have;
            if (!c->subscribed || c->ended || c->closed) lost_on_closed += target - have;
        }
    }
    Buf b = {0};
    buf_printf(&b, "{\"process\":0,\"subscribers\":%llu,\"connections\":%u,\"sampled\":%llu,",
               (unsigned long long)subscribed, cfg.n, (unsigned long long)subscribed);
    buf_printf(&b,
               "\"delivered\":%llu,\"lost\":%llu,\"incomplete_subscribers\":%llu,"
               "\"lost_on_closed\":%llu,\"closed_subscribers\":%llu,\"ended_subscriptions\":%llu,"
               "\"duplicates\":%llu,\"unacknowledged_received\":%llu,\"unexpected\":%llu,"
               "\"out_of_order\":%llu,\"messages\":%llu,\"changes\":%llu,\"received_bytes\":%llu,",
               (unsigned long long)delivered, (unsigned long long)lost,
               (unsigned long long)incomplete, (unsigned long long)lost_on_closed,
               (unsigned long long)closed_subs, (unsigned long long)ended_subs,
               (unsigned long long)dups, (unsigned long long)unacked,
               (unsigned long long)unexpected, (unsigned long long)out_of_order,
               (unsigned long long)msgs, (unsigned long long)chs, (unsigned long long)bytes);
    buf_printf(&b, "\"last_receipt\":%.6f,\"closes\":", last_receipt);
    buf_counter(&b, &closes);
    buf_printf(&b, ",\"errors\":");
    buf_counter(&b, &errors);
    buf_printf(&b, ",\"error_samples\":[");
    for (int i = 0; i < n_error_samples; i++) {
        if (i) buf_append(&b, ",", 1);
        buf_json_string(&b, error_samples[i].p, error_samples[i].len);
    }
    buf_printf(&b, "],\"ended\":");
    buf_counter(&b, &ended);
    buf_printf(&b, ",\"other_messages\":");
    buf_counter(&b, &other);
    buf_printf(&b, ",\"actions\":");
    buf_counter(&b, &actions);
    buf_printf(&b, ",\"unexpected_samples\":[");
    for (int i = 0; i < n_unexpected_samples; i++) {
        if (i) buf_append(&b, ",", 1);
        buf_json_string(&b, unexpected_samples[i].p, unexpected_samples[i].len);
    }
    buf_printf(&b, "],\"pings\":%llu,\"ws_pings\":%llu,\"deflate\":0,\"loop_lag_ms\":[",
               (unsigned long long)pings, (unsigned long long)ws_pings);
    for (size_t i = 0; i < n_lag; i++) buf_printf(&b, i ? ",%.3f" : "%.3f", lag_ms[i]);
    buf_printf(&b, "],\"slowest\":[");
    for (size_t s = 0; s < m; s++) {
        if (s) buf_append(&b, ",", 1);
        buf_double(&b, slowest[s], 3);
    }
    static const double all[] = {50, 90, 99, 99.9}, two[] = {50, 99};
    buf_printf(&b, "],\"latency_ms\":{");
    buf_percentiles(&b, lat, k, all, 4);
    buf_printf(&b, ",\"samples\":%zu,\"sampled_subscribers\":%llu,\"negative\":%llu}", k,
               (unsigned long long)subscribed, (unsigned long long)negative);
    k = 0; /* the same deliveries, from when each write was due */
    for (uint32_t i = 0; i < cfg.n; i++) {
        if (!conns[i].in_set) continue;
        const float *t = times + (size_t)i * m;
        for (size_t s = 0; s < m; s++)
            if (t[s] != 0 && !isnan(acks[s]))
                lat[k++] = (float)(((double)t[s] + base - dues[s]) * 1000);
    }
    buf_printf(&b, ",\"latency_from_due_ms\":{");
    buf_percentiles(&b, lat, k, two, 2);
    buf_printf(&b, "}}");
    emit("result", &b);
    buf_free(&b);
    free(lat);
    free(slowest);
}

static int drained(void) {
    for (uint32_t i = 0; i < cfg.n; i++) {
        Conn *c = &conns[i];
        if (c->in_set && c->subscribed && !c->ended && !c->closed && c->got < drain_target)
            return 0;
    }
    return 1;
}

/* -- set-up and the loop --------------------------------------------------------------------- */

static void read_auth_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) die("%s: %s", path, strerror(errno));
    char chunk[65536];
    size_t r;
    while ((r = fread(chunk, 1, sizeof chunk, f)) > 0) buf_append(&auth_lines, chunk, r);
    fclose(f);
    size_t lines = 0;
    for (size_t i = 0; i < auth_lines.len; i++) lines += auth_lines.p[i] == '\n';
    auth_off = calloc(lines + 1, sizeof(size_t));
    auth_len = calloc(lines + 1, sizeof(size_t));
    if (!auth_off || !auth_len) die("out of memory");
    size_t start = 0;
    for (size_t i = 0; i <= auth_lines.len; i++) {
        if (i == auth_lines.len || auth_lines.p[i] == '\n') {
            if (i > start) {
                auth_off[auth_count] = start;
                auth_len[auth_count] = i - start;
                auth_count++;
            }
            start = i + 1;
        }
    }
    if (!auth_count) die("%s: no auth messages", path);
}

static void resolve(void) {
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
    char port[16];
    snprintf(port, sizeof port, "%d", cfg.port);
    int rc = getaddrinfo(cfg.host, port, &hints, &res);
    if (rc) die("%s: %s", cfg.host, gai_strerror(rc));
    memcpy(&addr, res->ai_addr, res->ai_addrlen);
    addrlen = res->ai_addrlen;
    freeaddrinfo(res);
    int hn = snprintf(request_head, sizeof request_head,
                      "GET " WS_PATH " HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Key: ",
                      cfg.host, cfg.port);
    if (hn < 0 || (size_t)hn >= sizeof request_head) die("host name too long");
}

static void raise_nofile(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) return;
    rlim_t need = (rlim_t)cfg.n + 64;
    if (rl.rlim_cur < need && rl.rlim_cur != RLIM_INFINITY) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need)
        fprintf(stderr, "wsload: the open-files limit is %llu; %llu are needed\n",
                (unsigned long long)rl.rlim_cur, (unsigned long long)need);
}

static void arm_tick(double now) {
    tick_due = now + TICK_S;
    struct itimerspec its = {0};
    its.it_value.tv_sec = (time_t)tick_due;
    its.it_value.tv_nsec = (long)((tick_due - (double)(time_t)tick_due) * 1e9);
    timerfd_settime(timer_fd, TFD_TIMER_ABSTIME, &its, NULL);
}

static void housekeeping(double now) {
    if (!ready_sent) {
        int pending = started_count < cfg.n;
        for (uint32_t i = 0; i < started_count; i++) {
            Conn *c = &conns[i];
            if (setup_done(c)) continue;
            if (now - c->started > cfg.setup_timeout) {
                fail(c, "no answer within %gs during %s", cfg.setup_timeout, STAGE[c->stage]);
                abort_conn(c, "timeout");
            } else {
                pending = 1;
            }
        }
        if (!pending) {
            uint32_t subscribed = 0;
            for (uint32_t i = 0; i < cfg.n; i++) {
                conns[i].in_set = conns[i].subscribed;
                subscribed += conns[i].subscribed;
            }
            snprintf(phase, sizeof phase, "idle");
            Buf b = {0};
            buf_printf(&b, "{\"subscribed\":%u,\"failures\":", subscribed);
            buf_counter(&b, &failures);
            buf_printf(&b, ",\"seconds\":%.3f}", now - setup_started);
            emit("ready", &b);
            buf_free(&b);
            ready_sent = 1;
        }
    }
    if (finishing && (drained() || wall() >= finish_deadline)) {
        finishing = 0;
        lag_active = 0;
        tally();
    }
    if (closing_all) {
        int open = 0;
        for (uint32_t i = 0; i < cfg.n && !open; i++) open = conns[i].fd >= 0;
        if (open && now < close_deadline) return;
        for (uint32_t i = 0; i < cfg.n; i++) {
            conns[i].closed = 1;
            close_fd(&conns[i]);
        }
        Buf b = {0};
        buf_printf(&b, "{}");
        emit("closed", &b);
        exit(0);
    }
}

static void usage(void) {
    fprintf(stderr,
            "usage: wsload --host H --port P --subscribers N --planned M [--connect-rate R]\n"
            "              [--setup-timeout S] [--auth-file FILE]\n");
    exit(2);
}

int main(int argc, char **argv) {
    static const struct option opts[] = {
        {"host", required_argument, 0, 'h'},         {"port", required_argument, 0, 'p'},
        {"subscribers", required_argument, 0, 'n'},  {"planned", required_argument, 0, 'm'},
        {"connect-rate", required_argument, 0, 'r'}, {"setup-timeout", required_argument, 0, 't'},
        {"auth-file", required_argument, 0, 'a'},    {0, 0, 0, 0},
    };
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'h': cfg.host = optarg; break;
        case 'p': cfg.port = atoi(optarg); break;
        case 'n': cfg.n = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'm': cfg.planned = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'r': cfg.connect_rate = strtod(optarg, NULL); break;
        case 't': cfg.setup_timeout = strtod(optarg, NULL); break;
        case 'a': cfg.auth_file = optarg; break;
        default: usage();
        }
    }
    if (!cfg.port || !cfg.n || cfg.connect_rate <= 0) usage();
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, SIG_IGN); /* Ctrl-C is the driver's to handle; it closes our stdin */
    uint64_t seed;
    if (getrandom(&seed, sizeof seed, 0) != sizeof seed) seed = (uint64_t)(wall() * 1e9);
    rng_state = seed | 1;
    raise_nofile();
    resolve();
    if (cfg.auth_file) read_auth_file(cfg.auth_file);
    base = wall() - 1.0; /* receipts are > 0: 0 means none */
    size_t cells = (size_t)cfg.n * cfg.planned;
    if (cells) { /* zero pages, touched as receipts come */
        times = mmap(NULL, cells * sizeof(float), PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (times == MAP_FAILED) die("mmap %zu receipt times: %s", cells, strerror(errno));
    }
    conns = calloc(cfg.n, sizeof(Conn));
    lag_ms = malloc(sizeof(double) * MAX_LAG_SAMPLES);
    rbcap = READ_CHUNK;
    rb = malloc(rbcap);
    if (!conns || !lag_ms || !rb) die("out of memory");
    for (uint32_t i = 0; i < cfg.n; i++) {
        conns[i].fd = -1;
        conns[i].index = i;
        conns[i].last_change_id = -1;
    }
    ep = epoll_create1(EPOLL_CLOEXEC);
    timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (ep < 0 || timer_fd < 0) die("epoll/timerfd: %s", strerror(errno));
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = ID_STDIN};
    fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
    if (epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev) < 0) die("epoll stdin: %s", strerror(errno));
    ev.data.u32 = ID_TIMER;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, timer_fd, &ev) < 0) die("epoll timer: %s", strerror(errno));
    setup_started = mono();
    arm_tick(setup_started);
    double last_house = 0;
    struct epoll_event events[1024];
    for (;;) {
        int timeout = 50;
        if (started_count < cfg.n) {
            double next = setup_started + started_count / cfg.connect_rate;
            double wait_ms = (next - mono()) * 1000;
            timeout = wait_ms <= 0 ? 0 : wait_ms < 50 ? (int)ceil(wait_ms) : 50;
        }
        int nev = epoll_wait(ep, events, 1024, timeout);
        if (nev < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait: %s", strerror(errno));
        }
        for (int i = 0; i < nev; i++) {
            uint32_t id = events[i].data.u32, what = events[i].events;
            if (id == ID_STDIN) {
                stdin_readable();
                continue;
            }
            if (id == ID_TIMER) {
                uint64_t expirations;
                if (read(timer_fd, &expirations, sizeof expirations) < 0) continue;
                double now = mono();
                if (lag_active && n_lag < MAX_LAG_SAMPLES)
                    lag_ms[n_lag++] = (now - tick_due) * 1000;
                arm_tick(now);
                continue;
            }
            Conn *c = &conns[id];
            if (c->fd < 0) continue; /* closed earlier in this batch */
            if (c->stage == ST_CONNECT) {
                if (what & (EPOLLOUT | EPOLLERR | EPOLLHUP)) connected(c);
                continue;
            }
            if ((what & EPOLLOUT) && c->out.len) flush_out(c);
            if (c->fd >= 0 && (what & (EPOLLIN | EPOLLERR | EPOLLHUP))) readable(c);
        }
        double now = mono();
        while (started_count < cfg.n &&
               now >= setup_started + started_count / cfg.connect_rate) {
            start_connect(&conns[started_count]);
            started_count++;
        }
        if (now - last_house >= 0.05) {
            last_house = now;
            housekeeping(now);
        }
    }
}
