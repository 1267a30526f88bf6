/*
 * loadgen.c - MQTT 3.1.1 load generator for the Fleetgate benchmark suite.
 *
 * Single-threaded, epoll, non-blocking sockets.  Speaks raw MQTT 3.1.1 so the
 * client side costs as little CPU as possible: packets are pre-encoded once per
 * connection and only the timestamp / packet id are patched before each write.
 *
 * Modes (see usage()):
 *   fleet   N publishers at a fixed aggregate rate + S subscribers on a filter
 *   burst   P publishers at full speed (QoS 0 or QoS 1 with a window) -> 1 sub
 *   fanout  1 publisher -> K subscribers on one topic (full speed or fixed rate)
 *   connect CONNECT/CONNACK/DISCONNECT cycles with bounded concurrency
 *   idle    open N connections, print READY, hold them, exit
 *
 * Credentials: --password-file gives publisher i the password on line i with an empty
 * username (the IoT Connector's device token mode); --sub-user/--sub-pass log subscribers in
 * (an application key and secret).  QoS 1 publishers also measure publish -> PUBACK latency.
 *
 * TLS (--tls): every connection makes a full OpenSSL client handshake (no session resumption,
 * no certificate verification: the brokers' certificates are self-signed; ALPN "mqtt", SNI
 * with --sni), non-blocking in the same epoll loop, then every mode runs over SSL_read /
 * SSL_write.  The plain path pays one well-predicted pointer test per socket call.
 *
 * Progress events (READY, START, STOP) go to stderr, one per line, flushed, so
 * a driver can sample the broker exactly at the phase boundaries.  The final
 * result is one JSON object on stdout.  Every phase has a deadline, so the run
 * always ends within setup_timeout + duration + grace + a few seconds.
 *
 * Build: gcc -O2 -Wall -Wextra -o bench/.build/loadgen bench/loadgen.c -lssl -lcrypto
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define MAX_SRC 64
#define MAX_EVENTS 1024
#define SUB_RBUF 16384
#define PUB_RBUF 256
#define READ_CHUNK 262144
#define NS_PER_S 1000000000LL

/* ------------------------------------------------------------------ types */

enum role { R_PUB, R_SUB, R_IDLE, R_CYCLE };
enum state {
    S_FREE, S_CONNECTING, S_TLS_HANDSHAKE, S_WAIT_CONNACK, S_WAIT_SUBACK, S_READY, S_WAIT_CLOSE,
    S_DEAD
};
enum phase { P_SETUP, P_RUN, P_DRAIN, P_DONE };

typedef struct {
    uint8_t *p;
    size_t off, len, cap; /* valid bytes are p[off..len) */
} buf_t;

/* A QoS 1 publish awaiting its PUBACK: packet id and send time (0 = free slot). */
struct ack_slot {
    int64_t ts;
    uint16_t pid;
};

typedef struct {
    int fd;
    uint8_t role, state, out_on, paused, listed;
    uint16_t next_pid;
    uint32_t inflight;
    int64_t t_open, last_tx;
    uint8_t *tmpl; /* pre-encoded PUBLISH (publishers only) */
    uint32_t tmpl_len, pid_off, ts_off;
    const char *password; /* --password-file line (publishers only) */
    struct ack_slot *acks; /* QoS 1 publishers: send time per packet id in flight */
    SSL *ssl;              /* --tls: the connection's TLS session, NULL on the plain path */
    buf_t rb, wb;
} conn_t;

typedef struct {
    const char *mode, *host, *topic, *filter;
    const char *password_file, *sub_user, *sub_pass;
    const char *sni; /* --sni: server name sent in the TLS ClientHello (none by default) */
    int tls;
    int ts_hex; /* timestamp as 16 hex digits (a UTF-8 payload) instead of 8 raw bytes */
    int port, nsrc;
    struct sockaddr_in src[MAX_SRC];
    long pubs, subs, conns, total;
    int qos, sub_qos, window, payload, keepalive, batch, retain;
    long concurrency, max_lag;
    double rate, duration, grace, setup_timeout, connect_rate;
} opts_t;

/* Log-linear latency histogram: 64 sub-buckets per power of two (~1.5%). */
#define H_SUB 64
#define H_BUCKETS (H_SUB * 64)
typedef struct {
    uint64_t b[H_BUCKETS];
    uint64_t count, max;
} hist_t;

typedef struct {
    uint64_t sent, acked, received, throttled;
    uint64_t sent_win, acked_win, received_win, cycles_win;
    uint64_t connected, connect_failed, disconnected, cycles;
    uint64_t tls_handshakes, tls_failed, tls_resumed;
} stats_t;

/* ----------------------------------------------------------------- globals */

static opts_t O;
static stats_t ST;
static hist_t H_LAT; /* end-to-end publish latency (or connect latency) */
static hist_t H_ACK; /* QoS 1 publish -> PUBACK, for publishes sent in the measured window */
static char **PASSWORDS; /* --password-file lines */
static long NPASSWORDS;
static conn_t *C;    /* all connections: subscribers first, then publishers */
static long NCONN, NSUBS_TOTAL, FIRST_PUB;
static int EP;
static struct sockaddr_in DST;
static enum phase PHASE = P_SETUP;
static int64_t T0, T_READY, T_START, T_STOP, T_END;
static long PENDING;   /* handshakes in progress (bounded by --concurrency) */
static long OPENED;    /* sockets opened so far */
static long *PAUSED;   /* publishers paused by the lag limit */
static long NPAUSED;
static int64_t LAG_FORGIVEN, LAST_RX_NS;
static uint8_t *SCRATCH;
static char ERR[256];
static struct rusage RU_START, RU_STOP;
static SSL_CTX *TLS_CTX; /* --tls only */
static char TLS_VERSION[32], TLS_CIPHER[64], TLS_GROUP[32], TLS_ALPN[32]; /* first handshake */

/* ----------------------------------------------------------------- helpers */

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "loadgen: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static void set_error(const char *msg) {
    if (!ERR[0]) snprintf(ERR, sizeof ERR, "%s", msg);
}

static void event(const char *name) {
    fprintf(stderr, "%s\n", name);
    fflush(stderr);
}

static void *xmalloc(size_t n) {
    void *p = calloc(1, n ? n : 1);
    if (!p) die("out of memory");
    return p;
}

static void buf_reserve(buf_t *b, size_t extra) {
    if (b->off && b->off == b->len) b->off = b->len = 0;
    if (b->len + extra <= b->cap) return;
    if (b->off) { /* compact before growing */
        memmove(b->p, b->p + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
        if (b->len + extra <= b->cap) return;
    }
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra) cap *= 2;
    b->p = realloc(b->p, cap);
    if (!b->p) die("out of memory");
    b->cap = cap;
}

static void buf_append(buf_t *b, const void *data, size_t n) {
    buf_reserve(b, n);
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

static void hist_add(hist_t *h, uint64_t v) {
    unsigned idx;
    if (v < 2 * H_SUB) {
        idx = (unsigned)v;
    } else {
        unsigned e = 63 - __builtin_clzll(v) - 6; /* keep 7 significant bits */
        idx = e * H_SUB + (unsigned)(v >> e);
    }
    if (idx >= H_BUCKETS) idx = H_BUCKETS - 1;
    h->b[idx]++;
    h->count++;
    if (v > h->max) h->max = v;
}

static uint64_t hist_value(unsigned idx) {
    if (idx < 2 * H_SUB) return idx;
    unsigned e = idx / H_SUB - 1;
    uint64_t m = idx - (uint64_t)e * H_SUB;
    return (m << e) + ((1ULL << e) >> 1); /* bucket midpoint */
}

static double hist_pct_us(const hist_t *h, double pct) {
    if (!h->count) return 0;
    uint64_t want = (uint64_t)(pct / 100.0 * (double)h->count + 0.5), seen = 0;
    if (want < 1) want = 1;
    for (unsigned i = 0; i < H_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= want) {
            uint64_t v = hist_value(i);
            return (double)(v > h->max ? h->max : v) / 1000.0;
        }
    }
    return (double)h->max / 1000.0;
}

static double tv_s(const struct timeval *tv) { return (double)tv->tv_sec + tv->tv_usec / 1e6; }

static double cpu_s(const struct rusage *r) {
    return (double)r->ru_utime.tv_sec + r->ru_utime.tv_usec / 1e6 + (double)r->ru_stime.tv_sec +
           r->ru_stime.tv_usec / 1e6;
}

/* --------------------------------------------------------------- encoding */

static size_t put_varint(uint8_t *p, uint32_t v) {
    size_t n = 0;
    do {
        uint8_t b = v & 0x7f;
        v >>= 7;
        p[n++] = b | (v ? 0x80 : 0);
    } while (v);
    return n;
}

static size_t put_str(uint8_t *p, const char *s, size_t len) {
    p[0] = (uint8_t)(len >> 8);
    p[1] = (uint8_t)len;
    memcpy(p + 2, s, len);
    return len + 2;
}

#define MAX_CRED 255 /* longest username / password accepted from the command line */
#define CONNECT_MAX (128 + 2 * (MAX_CRED + 2))

/* CONNECT; a NULL user/pass is left out, an empty user is sent as a zero-length string. */
static size_t enc_connect(uint8_t *out, const char *client_id, int keepalive, const char *user,
                          const char *pass) {
    size_t idlen = strlen(client_id);
    uint8_t body[CONNECT_MAX];
    size_t n = put_str(body, "MQTT", 4);
    body[n++] = 4; /* protocol level 3.1.1 */
    /* clean session; MQTT 3.1.1 allows a password only with the username flag */
    body[n++] = (uint8_t)(0x02 | (user || pass ? 0x80 : 0) | (pass ? 0x40 : 0));
    body[n++] = (uint8_t)(keepalive >> 8);
    body[n++] = (uint8_t)keepalive;
    n += put_str(body + n, client_id, idlen);
    if (user || pass) n += put_str(body + n, user ? user : "", user ? strlen(user) : 0);
    if (pass) n += put_str(body + n, pass, strlen(pass));
    out[0] = 0x10;
    size_t h = 1 + put_varint(out + 1, (uint32_t)n);
    memcpy(out + h, body, n);
    return h + n;
}

static size_t enc_subscribe(uint8_t *out, const char *filter, int qos) {
    size_t flen = strlen(filter), rl = 2 + 2 + flen + 1;
    out[0] = 0x82;
    size_t n = 1 + put_varint(out + 1, (uint32_t)rl);
    out[n++] = 0;
    out[n++] = 1; /* packet id 1 */
    n += put_str(out + n, filter, flen);
    out[n++] = (uint8_t)qos;
    return n;
}

/* Expand "{n}" in the topic template with the publisher index. */
static void expand_topic(char *out, size_t cap, const char *tmpl, long n) {
    const char *hole = strstr(tmpl, "{n}");
    if (!hole) {
        snprintf(out, cap, "%s", tmpl);
        return;
    }
    snprintf(out, cap, "%.*s%ld%s", (int)(hole - tmpl), tmpl, n, hole + 3);
}

/* PUBLISH template; remembers where the packet id and timestamp live. */
static void build_publish(conn_t *c, const char *topic) {
    size_t tlen = strlen(topic), pl = (size_t)O.payload;
    size_t rl = 2 + tlen + (O.qos ? 2 : 0) + pl;
    c->tmpl = xmalloc(rl + 8);
    uint8_t *p = c->tmpl;
    p[0] = (uint8_t)(0x30 | (O.qos << 1) | (O.retain ? 1 : 0));
    size_t n = 1 + put_varint(p + 1, (uint32_t)rl);
    n += put_str(p + n, topic, tlen);
    c->pid_off = (uint32_t)n;
    if (O.qos) n += 2;
    c->ts_off = (uint32_t)n;
    for (size_t i = 0; i < pl; i++) p[n + i] = (uint8_t)('a' + i % 26);
    c->tmpl_len = (uint32_t)(n + pl);
}

static int ts_len(void) { return O.ts_hex ? 16 : 8; }

static void put_ts(uint8_t *p, int64_t ts) {
    static const char hex[] = "0123456789abcdef";
    if (!O.ts_hex) {
        memcpy(p, &ts, 8);
        return;
    }
    for (int i = 15; i >= 0; i--, ts >>= 4) p[i] = (uint8_t)hex[ts & 0xf];
}

/* The timestamp at p (avail bytes), or -1 if there is none. */
static int64_t get_ts(const uint8_t *p, size_t avail) {
    int64_t ts = 0;
    if (avail < (size_t)ts_len()) return -1;
    if (!O.ts_hex) {
        memcpy(&ts, p, 8);
        return ts;
    }
    for (int i = 0; i < 16; i++) {
        uint8_t ch = p[i];
        int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
        if (d < 0) return -1;
        ts = (ts << 4) | d;
    }
    return ts;
}

/* Remember a QoS 1 publish's send time until its PUBACK (at most --window in flight). */
static void ack_track(conn_t *c, uint16_t pid, int64_t ts) {
    for (int i = 0; i < O.window; i++)
        if (!c->acks[i].ts) {
            c->acks[i].ts = ts;
            c->acks[i].pid = pid;
            return;
        }
}

static void ack_done(conn_t *c, uint16_t pid, int64_t t) {
    if (!c->acks) return;
    for (int i = 0; i < O.window; i++)
        if (c->acks[i].ts && c->acks[i].pid == pid) {
            int64_t ts = c->acks[i].ts;
            c->acks[i].ts = 0;
            if (ts >= T_START && (!T_STOP || ts < T_STOP) && t >= ts)
                hist_add(&H_ACK, (uint64_t)(t - ts));
            return;
        }
}

/* Patch timestamp + packet id into the template, return its length. */
static uint32_t stamp_publish(conn_t *c, int64_t ts) {
    if (O.payload >= ts_len()) put_ts(c->tmpl + c->ts_off, ts);
    if (O.qos) {
        if (++c->next_pid == 0) c->next_pid = 1;
        c->tmpl[c->pid_off] = (uint8_t)(c->next_pid >> 8);
        c->tmpl[c->pid_off + 1] = (uint8_t)c->next_pid;
        ack_track(c, c->next_pid, ts);
    }
    return c->tmpl_len;
}

/* ------------------------------------------------------------- connections */

static void set_out(conn_t *c, int on) {
    if (c->out_on == on || c->fd < 0) return;
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.u64 = (uint64_t)(c - C)};
    if (epoll_ctl(EP, EPOLL_CTL_MOD, c->fd, &ev) < 0) die("epoll_ctl MOD: %s", strerror(errno));
    c->out_on = (uint8_t)on;
}

/* Close the socket and free its TLS session (SSL_free leaves the fd to us). */
static void conn_release(conn_t *c) {
    if (c->ssl) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    close(c->fd);
    c->fd = -1;
}

static void conn_close(conn_t *c, int failed) {
    if (c->fd < 0) return;
    if (c->state == S_CONNECTING || c->state == S_TLS_HANDSHAKE || c->state == S_WAIT_CONNACK ||
        c->state == S_WAIT_SUBACK) {
        PENDING--;
        if (failed) ST.connect_failed++;
    } else if (failed && c->state == S_READY) {
        ST.disconnected++;
    }
    conn_release(c);
    c->state = S_DEAD;
    c->out_on = 0;
    c->rb.off = c->rb.len = c->wb.off = c->wb.len = 0;
}

/* send() or SSL_write(): bytes written, or -1 with errno (EAGAIN: retry on EPOLLOUT).  A TLS
 * write that hit EAGAIN must be retried with the same bytes: the caller queues the rest of
 * the packet in wb and retries from there (SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER). */
static ssize_t io_send(conn_t *c, const uint8_t *p, size_t len) {
    if (!c->ssl) return send(c->fd, p, len, MSG_NOSIGNAL);
    int n = SSL_write(c->ssl, p, len > INT32_MAX ? INT32_MAX : (int)len);
    if (n > 0) return n;
    int e = SSL_get_error(c->ssl, n);
    ERR_clear_error();
    errno = e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ ? EAGAIN : EPIPE;
    return -1;
}

/* recv() or SSL_read(): bytes, 0 at the end of the stream (TLS: close_notify or a bare FIN),
 * or -1 with errno. */
static ssize_t io_recv(conn_t *c, uint8_t *p, size_t cap) {
    if (!c->ssl) return recv(c->fd, p, cap, 0);
    int n = SSL_read(c->ssl, p, cap > INT32_MAX ? INT32_MAX : (int)cap);
    if (n > 0) return n;
    int e = SSL_get_error(c->ssl, n);
    ERR_clear_error();
    if (e == SSL_ERROR_ZERO_RETURN) return 0;
    errno = e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? EAGAIN : ECONNRESET;
    return -1;
}

/* Write as much of wb as the socket takes; returns -1 on a fatal error. */
static int flush_wb(conn_t *c) {
    buf_t *b = &c->wb;
    while (b->off < b->len) {
        ssize_t n = io_send(c, b->p + b->off, b->len - b->off);
        if (n > 0) {
            b->off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        return -1;
    }
    if (b->off == b->len) b->off = b->len = 0;
    c->last_tx = now_ns();
    return 0;
}

/* Send one packet directly (one write per packet) unless output is queued. */
static int send_packet(conn_t *c, const uint8_t *p, size_t len) {
    if (c->wb.len == c->wb.off) {
        ssize_t n = io_send(c, p, len);
        if (n == (ssize_t)len) {
            c->last_tx = now_ns();
            return 0;
        }
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return -1;
        if (n < 0) n = 0;
        p += n;
        len -= (size_t)n;
    }
    buf_append(&c->wb, p, len);
    set_out(c, 1);
    return 0;
}

/* Unique across loadgen processes: pid + slot. */
static const char *client_id(const conn_t *c) {
    static char id[48];
    snprintf(id, sizeof id, "lg%d-%ld", (int)getpid(), (long)(c - C));
    return id;
}

/* The connection's CONNECT, with its credentials (publishers: password file, subscribers:
 * --sub-user/--sub-pass). */
static size_t enc_connect_for(uint8_t *out, const conn_t *c) {
    const char *id = client_id(c);
    if (c->role == R_PUB && c->password) return enc_connect(out, id, O.keepalive, "", c->password);
    if (c->role == R_SUB && (O.sub_user || O.sub_pass))
        return enc_connect(out, id, O.keepalive, O.sub_user ? O.sub_user : "", O.sub_pass);
    return enc_connect(out, id, O.keepalive, NULL, NULL);
}

/* ------------------------------------------------------------------- TLS */

static void tls_init(void) {
    signal(SIGPIPE, SIG_IGN); /* SSL_write writes with write(), not send(MSG_NOSIGNAL) */
    TLS_CTX = SSL_CTX_new(TLS_client_method());
    if (!TLS_CTX) die("SSL_CTX_new failed");
    SSL_CTX_set_verify(TLS_CTX, SSL_VERIFY_NONE, NULL); /* the brokers' certs are self-signed */
    /* Partial writes and a moving buffer: a write cut short by EAGAIN is retried from wb.
     * Read ahead: one read() can take several records (a subscriber gets many). */
    SSL_CTX_set_mode(TLS_CTX, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_read_ahead(TLS_CTX, 1);
    SSL_CTX_set_session_cache_mode(TLS_CTX, SSL_SESS_CACHE_OFF); /* every handshake is full */
    SSL_CTX_set_options(TLS_CTX, SSL_OP_IGNORE_UNEXPECTED_EOF); /* a bare FIN ends a stream */
    static const unsigned char alpn[] = "\x04mqtt";
    if (SSL_CTX_set_alpn_protos(TLS_CTX, alpn, sizeof alpn - 1) != 0) die("ALPN setup failed");
}

/* Count a finished handshake; the first one's parameters go to the JSON output. */
static void tls_note(SSL *ssl) {
    ST.tls_handshakes++;
    if (SSL_session_reused(ssl)) ST.tls_resumed++;
    if (TLS_VERSION[0]) return;
    const unsigned char *alpn = NULL;
    unsigned alen = 0;
    SSL_get0_alpn_selected(ssl, &alpn, &alen);
    snprintf(TLS_VERSION, sizeof TLS_VERSION, "%s", SSL_get_version(ssl));
    snprintf(TLS_CIPHER, sizeof TLS_CIPHER, "%s", SSL_get_cipher_name(ssl));
    int group = SSL_get_negotiated_group(ssl); /* the key exchange (X25519, P-256, ...) */
    const char *gname = group > 0 ? OBJ_nid2sn(group & ~TLSEXT_nid_unknown) : NULL;
    snprintf(TLS_GROUP, sizeof TLS_GROUP, "%s", gname ? gname : "");
    snprintf(TLS_ALPN, sizeof TLS_ALPN, "%.*s", (int)alen, alen ? (const char *)alpn : "");
}

static void tls_fail(conn_t *c) {
    char msg[200];
    unsigned long e = ERR_get_error();
    const char *why = e ? ERR_reason_error_string(e) : NULL;
    snprintf(msg, sizeof msg, "TLS handshake failed: %s",
             why ? why : errno ? strerror(errno) : "connection closed");
    ERR_clear_error();
    ST.tls_failed++;
    set_error(msg);
    conn_close(c, 1);
}

/* One step of the client handshake; once it is done, CONNECT is the first record sent. */
static void tls_handshake(conn_t *c) {
    errno = 0;
    int r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        uint8_t pkt[CONNECT_MAX + 8];
        tls_note(c->ssl);
        c->state = S_WAIT_CONNACK;
        set_out(c, 0);
        if (send_packet(c, pkt, enc_connect_for(pkt, c)) < 0) conn_close(c, 1);
        return;
    }
    switch (SSL_get_error(c->ssl, r)) {
    case SSL_ERROR_WANT_READ: set_out(c, 0); break;
    case SSL_ERROR_WANT_WRITE: set_out(c, 1); break; /* TCP still connecting, or a full socket */
    default: tls_fail(c);
    }
}

/* TLS: register for both directions and write the ClientHello at once if TCP is up. */
static void tls_open(conn_t *c) {
    c->ssl = SSL_new(TLS_CTX);
    if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1) die("SSL_new failed");
    SSL_set_connect_state(c->ssl);
    if (O.sni && SSL_set_tlsext_host_name(c->ssl, O.sni) != 1) die("bad --sni %s", O.sni);
    c->state = S_TLS_HANDSHAKE;
    c->out_on = 1;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u64 = (uint64_t)(c - C)};
    if (epoll_ctl(EP, EPOLL_CTL_ADD, c->fd, &ev) < 0) die("epoll_ctl ADD: %s", strerror(errno));
    tls_handshake(c);
}

static int conn_open(conn_t *c, long idx) {
    OPENED++;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        set_error("socket() failed (fd limit?)");
        ST.connect_failed++;
        c->state = S_DEAD;
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (O.nsrc) {
        /* Defer port choice to connect() so each source IP gets its own port space. */
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        const struct sockaddr_in *src = &O.src[idx % O.nsrc];
        if (bind(fd, (const struct sockaddr *)src, sizeof *src) < 0) {
            close(fd);
            set_error("bind() to source address failed");
            ST.connect_failed++;
            c->state = S_DEAD;
            return -1;
        }
    }
    c->fd = fd;
    c->state = S_CONNECTING;
    c->inflight = 0;
    c->t_open = now_ns();
    PENDING++;
    int rc = connect(fd, (struct sockaddr *)&DST, sizeof DST);
    if (rc < 0 && errno != EINPROGRESS) {
        close(fd);
        c->fd = -1;
        c->state = S_DEAD;
        PENDING--;
        ST.connect_failed++;
        return -1;
    }
    if (TLS_CTX) {
        tls_open(c);
        return 0;
    }
    /* Loopback handshakes usually finish inside connect(): send CONNECT at once and
     * skip the EPOLLOUT round trip.  A socket still in SYN_SENT answers EAGAIN. */
    uint8_t pkt[CONNECT_MAX + 8];
    size_t len = enc_connect_for(pkt, c);
    int sent_now = send(fd, pkt, len, MSG_NOSIGNAL) == (ssize_t)len;
    if (sent_now) c->state = S_WAIT_CONNACK;
    c->out_on = (uint8_t)!sent_now;
    struct epoll_event ev = {.events = EPOLLIN | (sent_now ? 0 : EPOLLOUT),
                             .data.u64 = (uint64_t)(c - C)};
    if (epoll_ctl(EP, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl ADD: %s", strerror(errno));
    return 0;
}

/* TCP connected: send CONNECT and wait for CONNACK. */
static void on_connected(conn_t *c, uint32_t events) {
    if (events & (EPOLLERR | EPOLLHUP)) { /* refused or reset: no need for SO_ERROR */
        conn_close(c, 1);
        return;
    }
    uint8_t pkt[CONNECT_MAX + 8];
    c->state = S_WAIT_CONNACK;
    set_out(c, 0);
    if (send_packet(c, pkt, enc_connect_for(pkt, c)) < 0) conn_close(c, 1);
}

static void mark_ready(conn_t *c) {
    c->state = S_READY;
    PENDING--;
    ST.connected++;
}

/* ------------------------------------------------------------ packet logic */

static int lag_exceeded(void);
static void pub_fill(conn_t *c);

static void on_connack(conn_t *c, const uint8_t *p, size_t len) {
    if (c->state != S_WAIT_CONNACK || len < 4 || p[3] != 0) {
        conn_close(c, 1);
        return;
    }
    if (c->role == R_SUB) {
        uint8_t pkt[300];
        c->state = S_WAIT_SUBACK;
        if (send_packet(c, pkt, enc_subscribe(pkt, O.filter, O.sub_qos)) < 0) conn_close(c, 1);
    } else if (c->role == R_CYCLE) {
        static const uint8_t disc[2] = {0xe0, 0x00};
        hist_add(&H_LAT, (uint64_t)(now_ns() - c->t_open));
        mark_ready(c);
        c->state = S_WAIT_CLOSE; /* server must close the socket after DISCONNECT */
        if (send_packet(c, disc, 2) < 0) conn_close(c, 1);
    } else {
        mark_ready(c);
    }
}

static void on_publish(conn_t *c, const uint8_t *p, size_t hdr, size_t len) {
    int qos = (p[0] >> 1) & 3;
    const uint8_t *v = p + hdr;
    if (len - hdr < 2) {
        conn_close(c, 1);
        return;
    }
    size_t tlen = ((size_t)v[0] << 8) | v[1], off = 2 + tlen;
    if (hdr + off + (qos ? 2 : 0) > len) { /* malformed: topic runs past the packet */
        conn_close(c, 1);
        return;
    }
    if (qos) {
        uint8_t ack[4] = {0x40, 0x02, v[off], v[off + 1]};
        buf_append(&c->wb, ack, 4); /* flushed once per read batch */
        off += 2;
    }
    int64_t t = now_ns();
    if (hdr + off <= len) {
        int64_t ts = get_ts(v + off, len - hdr - off);
        if (ts > 0 && ts <= t) hist_add(&H_LAT, (uint64_t)(t - ts));
    }
    ST.received++;
    if (PHASE == P_RUN) ST.received_win++;
    LAST_RX_NS = t;
}

/* Refill happens in on_readable right after the PUBACK batch is parsed. */
static void on_puback(conn_t *c, const uint8_t *p, size_t len) {
    if (len >= 4) ack_done(c, (uint16_t)(p[2] << 8 | p[3]), now_ns());
    if (c->inflight) c->inflight--;
    ST.acked++;
    if (PHASE == P_RUN) ST.acked_win++;
}

static void handle_packet(conn_t *c, const uint8_t *p, size_t hdr, size_t len) {
    switch (p[0] >> 4) {
    case 2: on_connack(c, p, len); break;
    case 3: on_publish(c, p, hdr, len); break;
    case 4: on_puback(c, p, len); break;
    case 9: /* SUBACK */
        if (c->state == S_WAIT_SUBACK && len >= 5 && p[len - 1] != 0x80) mark_ready(c);
        else conn_close(c, 1);
        break;
    default: break; /* PINGRESP etc. */
    }
}

/* Decode the fixed header; returns header length, 0 if incomplete, -1 if bad. */
static int decode_header(const uint8_t *p, size_t avail, size_t *rl) {
    uint32_t v = 0;
    for (int i = 1; i <= 4; i++) {
        if ((size_t)i >= avail) return 0;
        v |= (uint32_t)(p[i] & 0x7f) << (7 * (i - 1));
        if (!(p[i] & 0x80)) {
            *rl = v;
            return i + 1;
        }
    }
    return -1;
}

/* Frame complete packets out of rb (partial packets stay buffered). */
static void parse_rb(conn_t *c) {
    buf_t *b = &c->rb;
    while (c->fd >= 0 && b->len - b->off >= 2) {
        size_t rl;
        const uint8_t *p = b->p + b->off;
        int hdr = decode_header(p, b->len - b->off, &rl);
        if (hdr < 0) {
            conn_close(c, 1);
            return;
        }
            if (hdr == 0) return;
        if (b->len - b->off < (size_t)hdr + rl) {
            buf_reserve(b, (size_t)hdr + rl + 5); /* ensure the rest fits */
            return;
        }
        b->off += (size_t)hdr + rl;
        handle_packet(c, p, (size_t)hdr, (size_t)hdr + rl);
    }
    if (c->fd >= 0 && b->off == b->len) b->off = b->len = 0;
}

static void on_readable(conn_t *c) {
    buf_t *b = &c->rb;
    /* few subscribers get big reads; many (fanout) must not cost 256 KiB each */
    size_t want = c->role != R_SUB ? PUB_RBUF : NSUBS_TOTAL <= 8 ? READ_CHUNK : SUB_RBUF;
    size_t got = 0;
    ssize_t n;
    for (;;) { /* plain: one recv; TLS: until OpenSSL holds nothing epoll cannot see */
        buf_reserve(b, want);
        n = io_recv(c, b->p + b->len, b->cap - b->len);
        if (n <= 0) break;
        got += (size_t)n;
        b->len += (size_t)n;
        parse_rb(c);
        if (!c->ssl || c->fd < 0 || !SSL_has_pending(c->ssl)) break;
    }
    if (n == 0 && c->fd >= 0) { /* orderly close: expected only after our DISCONNECT */
        if (c->state == S_WAIT_CLOSE) {
            ST.cycles++;
            if (PHASE == P_RUN) ST.cycles_win++;
            conn_release(c);
            c->state = S_FREE;
            b->off = b->len = c->wb.off = c->wb.len = 0;
        } else {
            conn_close(c, 1);
        }
        return;
    }
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        conn_close(c, 1);
        return;
    }
    if (!got) return;
    if (c->fd >= 0 && c->role == R_PUB && O.qos && PHASE == P_RUN && O.rate <= 0 &&
        c->inflight < (uint32_t)O.window) {
        pub_fill(c); /* write right away: the data piggybacks the TCP ACK */
        return;
    }
    if (c->fd >= 0 && c->wb.len > c->wb.off) { /* queued PUBACKs */
        if (flush_wb(c) < 0) conn_close(c, 1);
        else set_out(c, c->wb.len > c->wb.off);
    }
}

/* ------------------------------------------------------------- publishing */

static long expected_per_msg(void) { return NSUBS_TOTAL > 0 ? NSUBS_TOTAL : 1; }

/* Deliveries still owed by the broker, minus those written off as dropped. */
static int lag_exceeded(void) {
    if (O.max_lag <= 0 || O.subs == 0) return 0;
    int64_t owed = (int64_t)ST.sent * expected_per_msg() - (int64_t)ST.received - LAG_FORGIVEN;
    return owed > (int64_t)O.max_lag * expected_per_msg();
}

static void pause_pub(conn_t *c) {
    c->paused = 1;
    set_out(c, 0);
    if (!c->listed) { /* listed at most once, so PAUSED never overflows */
        c->listed = 1;
        PAUSED[NPAUSED++] = c - C;
    }
}

static void resume_paused(void) {
    for (long i = 0; i < NPAUSED; i++) {
        conn_t *c = &C[PAUSED[i]];
        c->listed = 0;
        if (c->paused && c->fd >= 0 && c->inflight < (uint32_t)O.window) {
            c->paused = 0;
            set_out(c, 1);
        }
    }
    NPAUSED = 0;
}

/* Full speed: fill one write with up to --batch publishes. */
static void pub_fill(conn_t *c) {
    if (c->wb.len > c->wb.off) { /* finish the previous batch first */
        if (flush_wb(c) < 0) conn_close(c, 1);
        else set_out(c, 1);
        return;
    }
    long k = O.batch;
    if (O.qos && (long)O.window - (long)c->inflight < k) k = (long)O.window - (long)c->inflight;
    if (k <= 0) { /* QoS 1 window full: the next PUBACK batch refills it */
        c->paused = 1;
        set_out(c, 0);
        return;
    }
    if (lag_exceeded()) {
        pause_pub(c);
        return;
    }
    c->paused = 0;
    int64_t ts = now_ns();
    size_t n = 0;
    for (long i = 0; i < k; i++) {
        uint32_t len = stamp_publish(c, ts);
        memcpy(SCRATCH + n, c->tmpl, len);
        n += len;
    }
    c->inflight += O.qos ? (uint32_t)k : 0;
    ST.sent += (uint64_t)k;
    ST.sent_win += (uint64_t)k;
    if (send_packet(c, SCRATCH, n) < 0) {
        conn_close(c, 1);
        return;
    }
    /* QoS 0 keeps EPOLLOUT armed (level-triggered pump); a full QoS 1 window waits for acks */
    if (O.qos && c->inflight >= (uint32_t)O.window && c->wb.len == c->wb.off) {
        c->paused = 1;
        set_out(c, 0);
    } else {
        set_out(c, 1);
    }
}

/* Fixed rate: one PUBLISH per write, round robin over publishers. */
static void pub_rate_tick(int64_t t) {
    static long rr;
    double due_d = O.rate * (double)(t - T_START) / 1e9 - (double)(ST.sent + ST.throttled);
    long due = (long)due_d, npubs = NCONN - FIRST_PUB;
    while (due-- > 0) {
        conn_t *c = NULL;
        for (long tries = 0; tries < npubs; tries++) {
            conn_t *cand = &C[FIRST_PUB + rr];
            rr = (rr + 1) % npubs;
            if (cand->state == S_READY && cand->fd >= 0) {
                c = cand;
                break;
            }
        }
        if (!c || (O.qos && c->inflight >= (uint32_t)O.window)) {
            ST.throttled++; /* no connection able to take the message now */
            continue;
        }
        uint32_t len = stamp_publish(c, t);
        c->inflight += O.qos ? 1 : 0;
        ST.sent++;
        ST.sent_win++;
        if (send_packet(c, c->tmpl, len) < 0) conn_close(c, 1);
    }
}

/* QoS 0 messages a broker drops never arrive: forgive them after a stall. */
static void lag_watchdog(int64_t t) {
    if (NPAUSED == 0) return;
    if (!lag_exceeded()) {
        resume_paused();
    } else if (t - LAST_RX_NS > 200 * 1000000LL) {
        LAG_FORGIVEN = (int64_t)ST.sent * expected_per_msg() - (int64_t)ST.received;
        LAST_RX_NS = t;
        resume_paused();
    }
}

static void send_pings(int64_t t) {
    static const uint8_t ping[2] = {0xc0, 0x00};
    int64_t limit = (int64_t)O.keepalive * NS_PER_S / 2;
    for (long i = 0; i < NCONN; i++) {
        conn_t *c = &C[i];
        if (c->fd >= 0 && c->state == S_READY && t - c->last_tx > limit) {
            if (send_packet(c, ping, 2) < 0) conn_close(c, 1);
            c->last_tx = t;
        }
    }
}

/* ------------------------------------------------------------------ setup */

static int is_cycle_mode(void) { return strcmp(O.mode, "connect") == 0; }
static int is_idle_mode(void) { return strcmp(O.mode, "idle") == 0; }

/* Open new sockets, subscribers first, respecting the rate and concurrency. */
static void admit_connections(int64_t t) {
    long limit = NCONN;
    if (O.connect_rate > 0) {
        long allowed = (long)(O.connect_rate * (double)(t - T0) / 1e9) + 1;
        if (allowed < limit) limit = allowed;
    }
    if (ST.connected + ST.connect_failed < (uint64_t)NSUBS_TOTAL && limit > NSUBS_TOTAL)
        limit = NSUBS_TOTAL;
    while (OPENED < limit && PENDING < O.concurrency) conn_open(&C[OPENED], OPENED);
}

/* connect mode: keep `concurrency` CONNECT/DISCONNECT cycles in flight. */
static void admit_cycles(void) {
    for (long i = 0; i < NCONN && PHASE == P_RUN; i++) {
        if (O.total > 0 && OPENED >= O.total) break;
        conn_t *c = &C[i];
        if (c->fd < 0) conn_open(c, OPENED);
    }
}

/* --password-file: one password per publisher, line i for publisher i. */
static void load_passwords(long need) {
    FILE *f = fopen(O.password_file, "r");
    if (!f) die("cannot open %s: %s", O.password_file, strerror(errno));
    PASSWORDS = xmalloc(sizeof(char *) * (size_t)(need ? need : 1));
    char line[MAX_CRED + 3];
    while (NPASSWORDS < need && fgets(line, sizeof line, f)) {
        size_t len = strcspn(line, "\r\n");
        if (len == strlen(line) && !feof(f))
            die("%s: line %ld too long", O.password_file, NPASSWORDS + 1);
        line[len] = 0;
        PASSWORDS[NPASSWORDS++] = strdup(line);
    }
    fclose(f);
    if (NPASSWORDS < need)
        die("%s: %ld passwords for %ld publishers", O.password_file, NPASSWORDS, need);
}

static void init_conns(void) {
    if (is_cycle_mode()) {
        NCONN = O.concurrency;
        NSUBS_TOTAL = 0;
    } else if (is_idle_mode()) {
        NCONN = O.conns;
        NSUBS_TOTAL = 0;
    } else {
        NCONN = O.subs + O.pubs;
        NSUBS_TOTAL = O.subs;
    }
    FIRST_PUB = NSUBS_TOTAL;
    if (O.password_file && !is_cycle_mode() && !is_idle_mode())
        load_passwords(NCONN - FIRST_PUB);
    C = xmalloc(sizeof(conn_t) * (size_t)(NCONN ? NCONN : 1));
    PAUSED = xmalloc(sizeof(long) * (size_t)(NCONN ? NCONN : 1));
    for (long i = 0; i < NCONN; i++) {
        conn_t *c = &C[i];
        c->fd = -1;
        c->state = S_FREE;
        if (is_cycle_mode()) c->role = R_CYCLE;
        else if (is_idle_mode()) c->role = R_IDLE;
        else c->role = i < NSUBS_TOTAL ? R_SUB : R_PUB;
        if (c->role == R_PUB) {
            char topic[256];
            expand_topic(topic, sizeof topic, O.topic, i - FIRST_PUB);
            build_publish(c, topic);
            if (PASSWORDS) c->password = PASSWORDS[i - FIRST_PUB];
            if (O.qos) c->acks = xmalloc(sizeof(struct ack_slot) * (size_t)O.window);
        }
    }
}

/* -------------------------------------------------------------- main loop */

static void dispatch(struct epoll_event *ev) {
    conn_t *c = &C[ev->data.u64];
    if (c->fd < 0) return;
    if (c->state == S_TLS_HANDSHAKE) {
        tls_handshake(c);
        return;
    }
    if (c->state == S_CONNECTING) {
        if (ev->events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) on_connected(c, ev->events);
        return;
    }
    if (ev->events & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(c);
    if (c->fd < 0 || !(ev->events & EPOLLOUT)) return;
    if (c->role == R_PUB && PHASE == P_RUN && O.rate <= 0) {
        pub_fill(c);
    } else if (flush_wb(c) < 0) {
        conn_close(c, 1);
    } else {
        set_out(c, c->wb.len > c->wb.off);
    }
}

static void start_run(int64_t t) {
    PHASE = P_RUN;
    T_START = t;
    LAST_RX_NS = t;
    getrusage(RUSAGE_SELF, &RU_START);
    event("START");
    if (O.rate <= 0) /* full speed: arm EPOLLOUT on every publisher */
        for (long i = FIRST_PUB; i < NCONN; i++)
            if (C[i].role == R_PUB && C[i].fd >= 0) set_out(&C[i], 1);
}

static void stop_run(int64_t t) {
    PHASE = P_DRAIN;
    T_STOP = t;
    getrusage(RUSAGE_SELF, &RU_STOP);
    event("STOP");
    for (long i = FIRST_PUB; i < NCONN; i++) /* stop full-speed writers */
        if (C[i].role == R_PUB && C[i].fd >= 0) set_out(&C[i], C[i].wb.len > C[i].wb.off);
}

static int drained(void) {
    if (is_cycle_mode()) {
        for (long i = 0; i < NCONN; i++)
            if (C[i].fd >= 0) return 0;
        return 1;
    }
    if (is_idle_mode()) return 1;
    int rx_done = ST.received + (uint64_t)LAG_FORGIVEN >= ST.sent * (uint64_t)expected_per_msg();
    int ack_done = O.qos == 0 || ST.acked >= ST.sent;
    return (O.subs == 0 || rx_done) && ack_done;
}

/* One step of the phase machine; returns 0 when the run is over. */
static int advance_phase(int64_t t) {
    int64_t setup_deadline = T0 + (int64_t)(O.setup_timeout * 1e9);
    if (PHASE == P_SETUP) {
        if (is_cycle_mode()) {
            T_READY = t;
            start_run(t);
            return 1;
        }
        admit_connections(t);
        if (ST.connected + ST.connect_failed >= (uint64_t)NCONN && PENDING == 0) {
            T_READY = t;
            event("READY");
            if (ST.connect_failed) set_error("some connections failed");
            start_run(t);
        } else if (t > setup_deadline) {
            set_error("setup timeout: not all connections were established");
            T_READY = t;
            event("READY");
            start_run(t);
        }
        return 1;
    }
    if (PHASE == P_RUN) {
        if (t - T_START >= (int64_t)(O.duration * 1e9)) stop_run(t);
        return 1;
    }
    if (PHASE == P_DRAIN) {
        if (drained() || t - T_STOP >= (int64_t)(O.grace * 1e9)) {
            PHASE = P_DONE;
            T_END = t;
            return 0;
        }
    }
    return PHASE != P_DONE;
}

static int poll_timeout_ms(void) {
    if (PHASE == P_RUN && O.rate > 0) return 1;
    return PHASE == P_SETUP ? 5 : 20;
}

static void run(void) {
    struct epoll_event evs[MAX_EVENTS];
    int64_t last_ping = now_ns();
    for (;;) {
        int64_t t = now_ns();
        if (!advance_phase(t)) break;
        if (PHASE == P_RUN) {
            if (is_cycle_mode()) admit_cycles();
            else if (O.rate > 0 && !is_idle_mode()) pub_rate_tick(t);
            else lag_watchdog(t);
        }
        if (O.keepalive > 0 && t - last_ping > NS_PER_S) {
            send_pings(t);
            last_ping = t;
        }
        int n = epoll_wait(EP, evs, MAX_EVENTS, poll_timeout_ms());
        if (n < 0 && errno != EINTR) die("epoll_wait: %s", strerror(errno));
        for (int i = 0; i < n; i++) dispatch(&evs[i]);
    }
}

static void disconnect_all(void) {
    static const uint8_t disc[2] = {0xe0, 0x00};
    for (long i = 0; i < NCONN; i++) {
        conn_t *c = &C[i];
        if (c->fd < 0) continue;
        if (c->state == S_READY && c->wb.len == c->wb.off && io_send(c, disc, 2) == 2 && c->ssl)
            SSL_shutdown(c->ssl); /* close_notify; no wait for the server's */
        conn_release(c);
    }
}

/* ----------------------------------------------------------------- output */

static void print_json(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    if (!T_STOP) { /* the run never reached STOP (idle mode or early end) */
        T_STOP = T_END;
        RU_STOP = ru;
    }
    if (!T_START) T_START = T_STOP;
    double win = (double)(T_STOP - T_START) / 1e9, wall = (double)(T_END - T0) / 1e9;
    double expected = (double)ST.sent * (double)expected_per_msg();
    double lost = O.subs && !is_cycle_mode() && !is_idle_mode() ? expected - (double)ST.received : 0;
    if (win <= 0) win = 1e-9;
    printf("{\"mode\": \"%s\", \"error\": %s%s%s, ", O.mode, ERR[0] ? "\"" : "", ERR[0] ? ERR : "null",
           ERR[0] ? "\"" : "");
    printf("\"pubs\": %ld, \"subs\": %ld, \"conns\": %ld, \"qos\": %d, \"window\": %d, "
           "\"payload\": %d, \"rate_target\": %.1f, ",
           is_cycle_mode() || is_idle_mode() ? 0 : O.pubs, NSUBS_TOTAL, NCONN, O.qos, O.window,
           O.payload, O.rate);
    printf("\"connected\": %lu, \"connect_failed\": %lu, \"disconnected\": %lu, ",
           (unsigned long)ST.connected, (unsigned long)ST.connect_failed,
           (unsigned long)ST.disconnected);
    printf("\"sent\": %lu, \"acked\": %lu, \"received\": %lu, \"expected\": %.0f, \"lost\": %.0f, "
           "\"throttled\": %lu, \"forgiven\": %ld, ",
           (unsigned long)ST.sent, (unsigned long)ST.acked, (unsigned long)ST.received, expected,
           lost, (unsigned long)ST.throttled, (long)LAG_FORGIVEN);
    printf("\"sent_win\": %lu, \"acked_win\": %lu, \"received_win\": %lu, \"cycles\": %lu, "
           "\"cycles_win\": %lu, ",
           (unsigned long)ST.sent_win, (unsigned long)ST.acked_win,
           (unsigned long)ST.received_win, (unsigned long)ST.cycles, (unsigned long)ST.cycles_win);
    printf("\"send_rate\": %.1f, \"ack_rate\": %.1f, \"recv_rate\": %.1f, \"connect_rate\": %.1f, ",
           (double)ST.sent_win / win, (double)ST.acked_win / win, (double)ST.received_win / win,
           (double)ST.cycles_win / win);
    printf("\"latency_us\": {\"count\": %lu, \"p50\": %.1f, \"p90\": %.1f, \"p99\": %.1f, "
           "\"max\": %.1f}, ",
           (unsigned long)H_LAT.count, hist_pct_us(&H_LAT, 50), hist_pct_us(&H_LAT, 90),
           hist_pct_us(&H_LAT, 99), (double)H_LAT.max / 1000.0);
    printf("\"ack_latency_us\": {\"count\": %lu, \"p50\": %.1f, \"p90\": %.1f, "
           "\"p99\": %.1f, \"max\": %.1f}, ",
           (unsigned long)H_ACK.count, hist_pct_us(&H_ACK, 50), hist_pct_us(&H_ACK, 90),
           hist_pct_us(&H_ACK, 99), (double)H_ACK.max / 1000.0);
    printf("\"tls\": %d, \"tls_version\": \"%s\", \"tls_cipher\": \"%s\", \"tls_group\": \"%s\", "
           "\"tls_alpn\": \"%s\", \"tls_handshakes\": %lu, \"tls_failed\": %lu, "
           "\"tls_resumed\": %lu, ",
           O.tls, TLS_VERSION, TLS_CIPHER, TLS_GROUP, TLS_ALPN, (unsigned long)ST.tls_handshakes,
           (unsigned long)ST.tls_failed, (unsigned long)ST.tls_resumed);
    printf("\"setup_s\": %.3f, \"window_s\": %.3f, \"wall_s\": %.3f, \"cpu_s\": %.3f, "
           "\"window_cpu_s\": %.3f, \"window_sys_s\": %.3f}\n",
           (double)(T_READY - T0) / 1e9, win, wall, cpu_s(&ru), cpu_s(&RU_STOP) - cpu_s(&RU_START),
           tv_s(&RU_STOP.ru_stime) - tv_s(&RU_START.ru_stime));
    fflush(stdout);
}

/* ------------------------------------------------------------------ options */

static void usage(void) {
    fprintf(stderr,
            "usage: loadgen --mode fleet|burst|fanout|connect|idle [options]\n"
            "  --host A --port P        broker address (127.0.0.0/8 only)\n"
            "  --src A,B,...            source addresses to bind, round robin\n"
            "  --pubs N --subs S        publisher / subscriber connections\n"
            "  --conns N                idle connections (idle mode)\n"
            "  --rate R                 aggregate msg/s (0 = full speed)\n"
            "  --qos Q --sub-qos Q      publish / subscribe QoS (0 or 1)\n"
            "  --retain 0|1             publish with RETAIN=1 (a durable write per message)\n"
            "  --window W               QoS 1 in-flight messages per publisher\n"
            "  --payload B              payload bytes (>= 8 carries a timestamp)\n"
            "  --topic T --filter F     topic template ({n} = publisher index), filter\n"
            "  --duration D --grace G   measured seconds, drain seconds\n"
            "  --setup-timeout S        max seconds to connect everything\n"
            "  --connect-rate R         new connections/s during setup\n"
            "  --concurrency C          max handshakes in flight (connect: cycles)\n"
            "  --total N                connect mode: stop after N cycles\n"
            "  --max-lag M              full-speed QoS0: max undelivered msgs (0=off)\n"
            "  --batch B                full speed: publishes per write\n"
            "  --keepalive K            CONNECT keepalive (PINGREQ every K/2 s)\n"
            "  --password-file F        publisher i sends line i as password, empty username\n"
            "  --sub-user U --sub-pass P  subscriber credentials\n"
            "  --ts-hex 0|1             timestamp as 16 hex digits (UTF-8 payload)\n"
            "  --tls                    TLS (full handshakes, no certificate check, ALPN mqtt)\n"
            "  --sni NAME               TLS server name indication (default: none)\n");
    exit(2);
}

static void mode_defaults(void) {
    O.host = "127.0.0.1";
    O.port = 1883;
    O.payload = 64;
    O.window = 10;
    O.duration = 10;
    O.grace = 3;
    O.setup_timeout = 60;
    O.connect_rate = 5000;
    O.concurrency = 200;
    O.batch = 16;
    O.sub_qos = -1;
    O.max_lag = -1;
    if (strcmp(O.mode, "fleet") == 0) {
        O.pubs = 10000, O.subs = 1, O.rate = 20000;
        O.topic = "dev/{n}/data", O.filter = "dev/+/data";
    } else if (strcmp(O.mode, "burst") == 0) {
        O.pubs = 100, O.subs = 1, O.rate = 0;
        O.topic = "bench/{n}", O.filter = "bench/#";
    } else if (strcmp(O.mode, "fanout") == 0) {
        O.pubs = 1, O.subs = 1000, O.rate = 0;
        O.topic = "fan/t", O.filter = "fan/t";
    } else if (strcmp(O.mode, "connect") == 0) {
        O.concurrency = 100;
    } else if (strcmp(O.mode, "idle") == 0) {
        O.conns = 1000;
    } else {
        usage();
    }
}

static void parse_src(const char *list) {
    char *copy = strdup(list), *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (O.nsrc >= MAX_SRC) die("too many source addresses");
        struct sockaddr_in *a = &O.src[O.nsrc++];
        a->sin_family = AF_INET;
        if (inet_pton(AF_INET, tok, &a->sin_addr) != 1) die("bad source address %s", tok);
        if ((ntohl(a->sin_addr.s_addr) >> 24) != 127) die("source must be in 127.0.0.0/8");
    }
    free(copy);
}

static void parse_args(int argc, char **argv) {
    for (int i = 1; i + 1 < argc; i++) /* "--tls" takes no value: scan every argument */
        if (strcmp(argv[i], "--mode") == 0) O.mode = argv[i + 1];
    if (!O.mode) usage();
    mode_defaults();
    for (int i = 1; i < argc;) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(k, "--tls")) { /* the only flag without a value */
            O.tls = 1;
            i++;
            continue;
        }
        if (!v) usage();
        i += 2;
        if (!strcmp(k, "--mode")) continue;
        else if (!strcmp(k, "--host")) O.host = v;
        else if (!strcmp(k, "--port")) O.port = atoi(v);
        else if (!strcmp(k, "--src")) parse_src(v);
        else if (!strcmp(k, "--pubs")) O.pubs = atol(v);
        else if (!strcmp(k, "--subs")) O.subs = atol(v);
        else if (!strcmp(k, "--conns")) O.conns = atol(v);
        else if (!strcmp(k, "--total")) O.total = atol(v);
        else if (!strcmp(k, "--rate")) O.rate = atof(v);
        else if (!strcmp(k, "--qos")) O.qos = atoi(v);
        else if (!strcmp(k, "--retain")) O.retain = atoi(v);
        else if (!strcmp(k, "--sub-qos")) O.sub_qos = atoi(v);
        else if (!strcmp(k, "--window")) O.window = atoi(v);
        else if (!strcmp(k, "--payload")) O.payload = atoi(v);
        else if (!strcmp(k, "--topic")) O.topic = v;
        else if (!strcmp(k, "--filter")) O.filter = v;
        else if (!strcmp(k, "--duration")) O.duration = atof(v);
        else if (!strcmp(k, "--grace")) O.grace = atof(v);
        else if (!strcmp(k, "--setup-timeout")) O.setup_timeout = atof(v);
        else if (!strcmp(k, "--connect-rate")) O.connect_rate = atof(v);
        else if (!strcmp(k, "--concurrency")) O.concurrency = atol(v);
        else if (!strcmp(k, "--max-lag")) O.max_lag = atol(v);
        else if (!strcmp(k, "--batch")) O.batch = atoi(v);
        else if (!strcmp(k, "--keepalive")) O.keepalive = atoi(v);
        else if (!strcmp(k, "--password-file")) O.password_file = v;
        else if (!strcmp(k, "--sub-user")) O.sub_user = v;
        else if (!strcmp(k, "--sub-pass")) O.sub_pass = v;
        else if (!strcmp(k, "--ts-hex")) O.ts_hex = atoi(v);
        else if (!strcmp(k, "--sni")) O.sni = v;
        else usage();
    }
    if (O.sub_qos < 0) O.sub_qos = O.qos;
    /* default: ~10k deliveries owed (at least 100 msgs): pipe stays full, queues small */
    if (O.max_lag < 0) {
        O.max_lag = 10000 / (O.subs > 0 ? O.subs : 1);
        if (O.max_lag < 100) O.max_lag = 100; /* fanout: 100 msgs queued per sub */
    }
    if (O.qos < 0 || O.qos > 1 || O.sub_qos > 1 || O.window < 1 || O.batch < 1) usage();
    if (O.payload < 0 || O.payload > 65536 || O.duration <= 0 || O.concurrency < 1) usage();
    if ((O.sub_user && strlen(O.sub_user) > MAX_CRED) ||
        (O.sub_pass && strlen(O.sub_pass) > MAX_CRED))
        die("credentials: at most %d bytes", MAX_CRED);
    if (O.duration > 3600 || O.grace > 600 || O.setup_timeout > 600) die("limits: 1h run, 10m setup");
    if (O.sni && !O.tls) die("--sni needs --tls");
}

static void init_target(void) {
    DST.sin_family = AF_INET;
    DST.sin_port = htons((uint16_t)O.port);
    if (inet_pton(AF_INET, O.host, &DST.sin_addr) != 1) die("bad host %s", O.host);
    if ((ntohl(DST.sin_addr.s_addr) >> 24) != 127) die("host must be in 127.0.0.0/8");
}

static void raise_fd_limit(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    getrlimit(RLIMIT_NOFILE, &rl);
    if ((long)rl.rlim_cur < NCONN + 16) die("need %ld fds, limit is %ld", NCONN + 16, (long)rl.rlim_cur);
}

int main(int argc, char **argv) {
    parse_args(argc, argv);
    init_target();
    init_conns();
    raise_fd_limit();
    SCRATCH = xmalloc((size_t)O.batch * (size_t)(O.payload + 300));
    if (O.tls) tls_init();
    EP = epoll_create1(EPOLL_CLOEXEC);
    if (EP < 0) die("epoll_create1: %s", strerror(errno));
    T0 = now_ns();
    run();
    if (!T_END) T_END = now_ns();
    if (PHASE != P_DONE) set_error("run aborted");
    disconnect_all();
    print_json();
    return ERR[0] ? 1 : 0;
}
