/*
 * sensor.c - wsgate-sensor: an example device on libwsgate-client.
 *
 * Publishes a reading ({"device":D,"seq":N,"value":V}, msgpack) on the
 * channel telemetry:<device> at --rate per second, and prints every
 * command published on cmd:<device> (by the backend: the gateway's admin
 * POST /publish, or a worker). With a /raw/... URL it sends the readings
 * as binary frames on the raw endpoint instead and prints what comes back.
 *
 * It prints one line per event on stdout (the integration test reads
 * them): state changes, each reading with the client's state when it was
 * produced, commands, errors, and counters at the end.
 *
 *   wsgate-sensor --url ws://127.0.0.1:8080/ws --device d1 --rate 2
 *   wsgate-sensor --url wss://gw.example.com/ws --token-file /etc/d1.jwt --device d1
 */
#include "wsc_client.h"

#include "envelope.h"
#include "mpk.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    const char *request; /* --request SVC: readings are requests to SVC */
    const char *token;
    const char *token_file;
    char token_buf[PROTO_TOKEN_MAX + 1];
    uint64_t acked;
    uint64_t errors;
} sensor_t;

static volatile sig_atomic_t s_stop;

static void
s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

static int64_t
s_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* msgpack data as one line of JSON (binary data as its length). */
static void
s_print_data(const uint8_t *p, size_t len)
{
    proto_buf_t b;

    if (!p) {
        fputs("null", stdout);
        return;
    }
    proto_buf_init(&b, 0);
    if (proto_mpk_to_json(proto_span(p, len), &b) == PROTO_OK)
        fwrite(proto_buf_payload(&b), 1, b.len, stdout);
    else
        printf("<%zu bytes>", len);
    proto_buf_fini(&b);
}

/* The token is read again at every (re)connection and refresh, so a
 * provisioning agent can replace the file. */
static const char *
s_token(wsc_client_t *c, void *user)
{
    sensor_t *s = user;
    FILE *f;
    size_t n;

    (void)c;
    if (!s->token_file)
        return s->token;
    f = fopen(s->token_file, "r");
    if (!f) {
        printf("token-error file=%s err=%s\n", s->token_file, strerror(errno));
        return NULL;
    }
    n = fread(s->token_buf, 1, sizeof(s->token_buf) - 1, f);
    fclose(f);
    while (n && (s->token_buf[n - 1] == '\n' || s->token_buf[n - 1] == '\r' ||
                 s->token_buf[n - 1] == ' '))
        n--;
    s->token_buf[n] = 0;
    return s->token_buf;
}

static void
s_on_state(wsc_client_t *c, wsc_state_t st, int code, const char *reason, void *user)
{
    (void)c;
    (void)user;
    if (st == WSC_STATE_DISCONNECTED)
        printf("state %s code=%d reason=%s\n", wsc_state_name(st), code, reason);
    else
        printf("state %s\n", wsc_state_name(st));
}

static void
s_on_reply(wsc_client_t *c, const wsc_reply_t *r, void *user)
{
    sensor_t *s = user;

    (void)c;
    if (r->ok) {
        s->acked++;
        if (s->request) {
            printf("reply id=%llu data=", (unsigned long long)r->id);
            s_print_data(r->data, r->len);
            putchar('\n');
        }
        return;
    }
    s->errors++;
    printf("error id=%llu code=%s msg=%s\n", (unsigned long long)r->id, r->code, r->msg);
}

static void
s_on_event(wsc_client_t *c, const wsc_event_t *ev, void *user)
{
    (void)c;
    (void)user;
    switch (ev->kind) {
    case WSC_EV_PUB:
        printf("command channel=%s offset=%llu user=%s data=", ev->channel,
               (unsigned long long)ev->offset, ev->user);
        s_print_data(ev->data, ev->len);
        putchar('\n');
        break;
    case WSC_EV_PUSH:
        printf("push svc=%s data=", ev->svc);
        s_print_data(ev->data, ev->len);
        putchar('\n');
        break;
    case WSC_EV_RAW:
        printf("raw binary=%d data=", ev->binary);
        s_print_data(ev->data, ev->len);
        putchar('\n');
        break;
    case WSC_EV_SUBSCRIBED:
        printf("subscribed channel=%s epoch=%s offset=%llu recovered=%d\n", ev->channel, ev->epoch,
               (unsigned long long)ev->offset, ev->recovered);
        break;
    case WSC_EV_SUB_FAILED:
        printf("sub-failed channel=%s code=%s\n", ev->channel, ev->code);
        break;
    case WSC_EV_JOIN:
    case WSC_EV_LEAVE:
        printf("%s channel=%s user=%s\n", ev->kind == WSC_EV_JOIN ? "join" : "leave", ev->channel,
               ev->user);
        break;
    }
}

static void
s_print_stats(wsc_client_t *c, const sensor_t *s)
{
    wsc_stats_t st;

    wsc_stats(c, &st);
    printf("stats sent=%llu acked=%llu errors=%llu dropped=%llu queued=%llu inflight=%llu "
           "connects=%llu attempts=%llu received=%llu bad_frames=%llu\n",
           (unsigned long long)st.sent, (unsigned long long)s->acked, (unsigned long long)s->errors,
           (unsigned long long)st.dropped, (unsigned long long)st.queued,
           (unsigned long long)st.inflight, (unsigned long long)st.connects,
           (unsigned long long)st.attempts, (unsigned long long)st.received,
           (unsigned long long)st.bad_frames);
}

static int
s_reading(proto_buf_t *b, const char *device, uint64_t seq)
{
    proto_buf_reset(b);
    return mpk_write_map(b, 3) || mpk_write_cstr(b, "device") || mpk_write_cstr(b, device) ||
           mpk_write_cstr(b, "seq") || mpk_write_uint(b, seq) || mpk_write_cstr(b, "value") ||
           mpk_write_double(b, 20.0 + (double)(seq % 10) * 0.5);
}

static void
s_usage(void)
{
    fprintf(stderr,
            "usage: wsgate-sensor --url ws[s]://HOST:PORT/ws [options]\n"
            "  --device ID        device id: publishes on telemetry:ID, listens on cmd:ID (dev1)\n"
            "  --rate R           readings per second (1)\n"
            "  --count N          stop after N readings (0: run until SIGINT/SIGTERM)\n"
            "  --queue N          messages kept while offline, oldest dropped (256)\n"
            "  --token T          token for the auth op\n"
            "  --token-file F     read the token from F at every (re)connection\n"
            "  --ca-file F        wss: CA bundle (PEM) to verify the gateway with\n"
            "  --insecure         wss: accept any certificate (tests only)\n"
            "  --linger-ms N      after the last reading, wait up to N ms for answers (10000)\n"
            "  --backoff-ms B,M   reconnect delay bounds: first, largest (500,30000)\n"
            "  --max-message N    largest message accepted from the gateway (1048576)\n"
            "  --request SVC      send each reading as a request to SVC, key ID, and print\n"
            "                     the replies (instead of publishing on telemetry:ID)\n");
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {{"url", required_argument, NULL, 'u'},
                                         {"device", required_argument, NULL, 'd'},
                                         {"rate", required_argument, NULL, 'r'},
                                         {"count", required_argument, NULL, 'n'},
                                         {"queue", required_argument, NULL, 'q'},
                                         {"token", required_argument, NULL, 't'},
                                         {"token-file", required_argument, NULL, 'T'},
                                         {"ca-file", required_argument, NULL, 'C'},
                                         {"insecure", no_argument, NULL, 'k'},
                                         {"linger-ms", required_argument, NULL, 'l'},
                                         {"backoff-ms", required_argument, NULL, 'b'},
                                         {"max-message", required_argument, NULL, 'm'},
                                         {"request", required_argument, NULL, 'R'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    wsc_config_t cfg;
    sensor_t s;
    wsc_client_t *c;
    wsc_stats_t st;
    proto_buf_t b;
    const char *device = "dev1";
    char telemetry[PROTO_CHANNEL_MAX + 1], cmd[PROTO_CHANNEL_MAX + 1];
    double rate = 1.0;
    unsigned long long count = 0, seq = 0;
    long linger_ms = 10000;
    double next;
    int64_t done_at = 0;
    int opt;
    bool raw;

    memset(&cfg, 0, sizeof(cfg));
    memset(&s, 0, sizeof(s));
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'u':
            cfg.url = optarg;
            break;
        case 'd':
            device = optarg;
            break;
        case 'r':
            rate = strtod(optarg, NULL);
            break;
        case 'n':
            count = strtoull(optarg, NULL, 10);
            break;
        case 'q':
            cfg.queue_max = strtoul(optarg, NULL, 10);
            break;
        case 't':
            s.token = optarg;
            break;
        case 'T':
            s.token_file = optarg;
            break;
        case 'C':
            cfg.ca_file = optarg;
            break;
        case 'k':
            cfg.insecure = true;
            break;
        case 'l':
            linger_ms = strtol(optarg, NULL, 10);
            break;
        case 'R':
            s.request = optarg;
            break;
        case 'm':
            cfg.max_message = strtoul(optarg, NULL, 10);
            break;
        case 'b':
            if (sscanf(optarg, "%u,%u", &cfg.backoff_base_ms, &cfg.backoff_max_ms) != 2) {
                s_usage();
                return 2;
            }
            break;
        default:
            s_usage();
            return opt == 'h' ? 0 : 2;
        }
    }
    if (!cfg.url || rate <= 0 || rate > 10000 || linger_ms < 0) {
        s_usage();
        return 2;
    }
    snprintf(telemetry, sizeof(telemetry), "telemetry:%s", device);
    snprintf(cmd, sizeof(cmd), "cmd:%s", device);
    if (!proto_channel_valid(proto_span(telemetry, strlen(telemetry)), PROTO_CHANNEL_MAX)) {
        fprintf(stderr, "wsgate-sensor: bad device id: %s\n", device);
        return 2;
    }
    cfg.token = (s.token || s.token_file) ? s_token : NULL;
    cfg.on_state = s_on_state;
    cfg.on_reply = s_on_reply;
    cfg.on_event = s_on_event;
    cfg.user = &s;
    setvbuf(stdout, NULL, _IOLBF, 0);
    c = wsc_client_new(&cfg);
    if (!c) {
        fprintf(stderr, "wsgate-sensor: cannot create the client (URL? TLS?)\n");
        return 2;
    }
    raw = strstr(cfg.url, "/raw/") != NULL;
    if (!raw && wsc_subscribe(c, cmd)) {
        fprintf(stderr, "wsgate-sensor: cannot subscribe to %s\n", cmd);
        wsc_client_destroy(&c);
        return 2;
    }
    signal(SIGINT, s_on_signal);
    signal(SIGTERM, s_on_signal);
    signal(SIGPIPE, SIG_IGN);
    proto_buf_init(&b, 0);
    next = (double)s_now_ms();
    while (!s_stop) {
        int64_t now = s_now_ms(), wait;

        if ((!count || seq < count) && (double)now >= next) {
            uint64_t id = 0;
            int rc;

            seq++;
            if (s_reading(&b, device, seq)) {
                fprintf(stderr, "wsgate-sensor: out of memory\n");
                break;
            }
            if (raw)
                rc = wsc_send_raw(c, proto_buf_payload(&b), b.len, true);
            else if (s.request) /* the actor of this device in service s.request */
                rc = wsc_request(c, s.request, device, proto_buf_payload(&b), b.len, &id);
            else
                rc = wsc_publish(c, telemetry, proto_buf_payload(&b), b.len, &id);
            printf("reading seq=%llu id=%llu state=%s%s\n", seq, (unsigned long long)id,
                   wsc_state_name(wsc_state(c)), rc ? " refused" : "");
            next += 1000.0 / rate;
            if (next < (double)(now - 1000)) /* asleep for long (SIGSTOP): no burst */
                next = (double)now;
            if (count && seq == count)
                done_at = now + linger_ms;
        }
        if (count && seq >= count) {
            wsc_stats(c, &st);
            /* done when every reading is answered (a drop is answered "dropped"; raw:
             * echoed), or after lingering long enough */
            if ((st.queued == 0 && st.inflight == 0 && wsc_state(c) == WSC_STATE_CONNECTED &&
                 (raw ? st.received >= count : s.acked + s.errors >= count)) ||
                now >= done_at)
                break;
        }
        wait = (!count || seq < count) ? (int64_t)next - now : 50;
        if (wait > 100)
            wait = 100;
        if (wait < 0)
            wait = 0;
        if (wsc_service(c, (int)wait)) {
            fprintf(stderr, "wsgate-sensor: event loop failed\n");
            break;
        }
    }
    s_print_stats(c, &s);
    printf("done\n");
    proto_buf_fini(&b);
    wsc_client_destroy(&c);
    return 0;
}
