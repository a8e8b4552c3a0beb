/*
 * wsc_link.c - the client's websocket connection over libwebsockets.
 *
 * lws 4.1 ignores lws_service()'s timeout (its scheduler sleeps until the
 * next event it knows of), so a bounded wait is a scheduled timer (sul)
 * at the bound: the poll then returns by then at the latest (s_wake).
 */
#include "wsc_link.h"

#include <libwebsockets.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct wsc_link {
    struct lws_context *ctx;
    struct lws_protocols protos[2];
    struct lws *wsi; /* the connection, NULL when none */
    wsc_link_ops_t ops;
    void *u;
    wsc_link_config_t cfg;
    lws_sorted_usec_list_t wake;
    bool destroying;
    bool in_connect; /* inside lws_client_connect_via_info() */
    bool reported;   /* `closed` was called for this attempt */
    bool opened;
    int close_code; /* ours, to send: 0 none */
    char close_reason[96];
    int peer_code; /* from the gateway's close frame */
    char peer_reason[96];
    char err[128]; /* why an attempt failed */
    /* reassembly of one message */
    uint8_t *rx;
    size_t rx_len, rx_cap;
    bool rx_discard;
};

static void
s_report(wsc_link_t *l, int code, const char *reason)
{
    l->wsi = NULL;
    if (l->reported || l->destroying)
        return;
    l->reported = true;
    l->ops.closed(l->u, code, reason ? reason : "");
}

static int
s_rx(wsc_link_t *l, struct lws *wsi, const uint8_t *in, size_t len)
{
    bool first = lws_is_first_fragment(wsi), final = lws_is_final_fragment(wsi);

    if (first) {
        l->rx_len = 0;
        l->rx_discard = false;
    }
    if (!l->rx_discard) {
        if (len > l->cfg.max_message - l->rx_len) {
            /* bounded before anything is kept: the rest of this message is
             * read and thrown away, the connection goes on */
            l->rx_discard = true;
            l->ops.oversized(l->u);
        } else if (first && final) {
            l->ops.message(l->u, in, len, lws_frame_is_binary(wsi));
            return 0;
        } else {
            if (l->rx_len + len > l->rx_cap) {
                size_t cap = l->rx_cap ? l->rx_cap : 4096;
                uint8_t *p;

                while (cap < l->rx_len + len)
                    cap *= 2;
                if (cap > l->cfg.max_message)
                    cap = l->cfg.max_message;
                p = realloc(l->rx, cap);
                if (!p)
                    return -1;
                l->rx = p;
                l->rx_cap = cap;
            }
            if (len)
                memcpy(l->rx + l->rx_len, in, len);
            l->rx_len += len;
        }
    }
    if (final && lws_remaining_packet_payload(wsi) == 0) {
        if (!l->rx_discard)
            l->ops.message(l->u, l->rx, l->rx_len, lws_frame_is_binary(wsi));
        l->rx_len = 0;
        l->rx_discard = false;
    }
    return 0;
}

static int
s_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    wsc_link_t *l = lws_context_user(lws_get_context(wsi));

    (void)user;
    if (l && l->in_connect && !l->wsi && !l->reported)
        l->wsi = wsi; /* lws may call back before it returns the wsi */
    if (!l || l->destroying || !wsi || wsi != l->wsi)
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    switch (reason) {
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        snprintf(l->err, sizeof(l->err), "%s", in ? (const char *)in : "connection failed");
        s_report(l, 1006, l->err);
        return 0;
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        l->opened = true;
        l->ops.opened(l->u);
        return 0;
    case LWS_CALLBACK_CLIENT_RECEIVE:
        return s_rx(l, wsi, in, len);
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        if (l->close_code) {
            lws_close_reason(wsi, (enum lws_close_status)l->close_code,
                             (unsigned char *)l->close_reason, strlen(l->close_reason));
            return -1;
        }
        return l->ops.writeable(l->u) ? -1 : 0;
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        if (len >= 2) {
            size_t n = len - 2 < sizeof(l->peer_reason) - 1 ? len - 2 : sizeof(l->peer_reason) - 1;
            size_t i;

            l->peer_code = ((const uint8_t *)in)[0] << 8 | ((const uint8_t *)in)[1];
            memcpy(l->peer_reason, (const uint8_t *)in + 2, n);
            l->peer_reason[n] = 0;
            for (i = 0; i < n; i++) /* for printing: no control bytes */
                if ((unsigned char)l->peer_reason[i] < ' ')
                    l->peer_reason[i] = '?';
        }
        return 0;
    case LWS_CALLBACK_CLIENT_CLOSED:
        if (l->close_code)
            s_report(l, l->close_code, l->close_reason);
        else if (l->peer_code)
            s_report(l, l->peer_code, l->peer_reason);
        else
            s_report(l, 1006, "connection lost");
        return 0;
    case LWS_CALLBACK_CLOSED_CLIENT_HTTP:
        /* the upgrade failed after the TCP connect */
        s_report(l, 1006, l->opened ? "connection lost" : "handshake failed");
        return 0;
    case LWS_CALLBACK_WSI_DESTROY:
        if (wsi == l->wsi)
            s_report(l, 1006, l->opened ? "connection lost" : "connection failed");
        return 0;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

size_t
wsc_link_headroom(void)
{
    return LWS_PRE;
}

wsc_link_t *
wsc_link_new(const wsc_link_config_t *cfg, const wsc_link_ops_t *ops, void *u)
{
    struct lws_context_creation_info info;
    wsc_link_t *l = calloc(1, sizeof(*l));

    if (!l)
        return NULL;
    l->ops = *ops;
    l->u = u;
    l->cfg = *cfg;
    l->protos[0].name = "wsgate-client";
    l->protos[0].callback = s_callback;
    /* lws hands a message up in pieces of at most this size; s_rx joins them */
    l->protos[0].rx_buffer_size = 16384;
    /* lws logs to stderr by default; the application decides what to print */
    lws_set_log_level(LLL_ERR, NULL);
    memset(&info, 0, sizeof(info));
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = l->protos;
    info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    info.client_ssl_ca_filepath = cfg->ca_file;
    info.user = l;
    info.gid = -1;
    info.uid = -1;
    info.connect_timeout_secs = (cfg->connect_timeout_ms + 999) / 1000;
    info.timeout_secs = info.connect_timeout_secs; /* the upgrade's own steps */
    l->ctx = lws_create_context(&info);
    if (!l->ctx) {
        free(l);
        return NULL;
    }
    return l;
}

void
wsc_link_destroy(wsc_link_t **self_p)
{
    wsc_link_t *l;

    if (!self_p || !*self_p)
        return;
    l = *self_p;
    l->destroying = true;
    lws_sul_cancel(&l->wake);
    lws_context_destroy(l->ctx);
    free(l->rx);
    free(l);
    *self_p = NULL;
}

int
wsc_link_connect(wsc_link_t *self, const wsc_url_t *url, const char *subprotocol)
{
    struct lws_client_connect_info ci;
    struct lws *wsi = NULL;

    if (self->wsi)
        return -1;
    memset(&ci, 0, sizeof(ci));
    ci.context = self->ctx;
    ci.address = url->host;
    ci.port = url->port;
    ci.path = url->path;
    ci.host = url->host;
    ci.origin = NULL; /* devices send no Origin (docs/protocol.md) */
    ci.protocol = subprotocol;
    ci.local_protocol_name = self->protos[0].name;
    ci.ietf_version_or_minus_one = -1;
    if (url->tls) {
        ci.ssl_connection = LCCSCF_USE_SSL;
        if (self->cfg.insecure)
            ci.ssl_connection |= LCCSCF_ALLOW_SELFSIGNED | LCCSCF_SKIP_SERVER_CERT_HOSTNAME_CHECK |
                                 LCCSCF_ALLOW_EXPIRED | LCCSCF_ALLOW_INSECURE;
    }
    ci.pwsi = &wsi;
    self->reported = false;
    self->opened = false;
    self->close_code = 0;
    self->close_reason[0] = 0;
    self->peer_code = 0;
    self->peer_reason[0] = 0;
    self->rx_len = 0;
    self->rx_discard = false;
    self->err[0] = 0;
    self->wsi = NULL;
    self->in_connect = true;
    if (!lws_client_connect_via_info(&ci)) {
        self->in_connect = false;
        s_report(self, 1006, self->err[0] ? self->err : "connection failed");
        return -1;
    }
    self->in_connect = false;
    if (!self->reported)
        self->wsi = wsi;
    return 0;
}

bool
wsc_link_busy(const wsc_link_t *self)
{
    return self->wsi != NULL;
}

void
wsc_link_want_write(wsc_link_t *self)
{
    if (self->wsi && self->opened)
        lws_callback_on_writable(self->wsi);
}

int
wsc_link_write(wsc_link_t *self, uint8_t *p, size_t len, bool binary)
{
    int n;

    if (!self->wsi)
        return -1;
    n = lws_write(self->wsi, p, len, binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
    return n < 0 || (size_t)n < len ? -1 : 0;
}

void
wsc_link_close(wsc_link_t *self, int code, const char *reason)
{
    if (!self->wsi)
        return;
    self->close_code = code;
    snprintf(self->close_reason, sizeof(self->close_reason), "%s", reason ? reason : "");
    if (self->opened)
        lws_callback_on_writable(self->wsi);
    else /* no websocket yet to send a close frame on */
        lws_set_timeout(self->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
}

/*
 * The wake timer. lws checks its timers right before it polls, runs those
 * that are due and then sleeps until the next one; when ours was the only
 * one and fell due in between (we were descheduled past the bound on a
 * busy machine), lws would sleep for its default of days. So the timer
 * re-arms itself 1 ms out whenever it fires: the poll that follows is
 * short, and the next wsc_link_service() moves it back to its bound.
 */
static void
s_wake(lws_sorted_usec_list_t *sul)
{
    wsc_link_t *l = lws_container_of(sul, wsc_link_t, wake);

    if (!l->destroying)
        lws_sul_schedule(l->ctx, 0, &l->wake, s_wake, LWS_US_PER_MS);
}

int
wsc_link_service(wsc_link_t *self, int timeout_ms)
{
    if (timeout_ms <= 0) /* lws: a negative timeout polls without waiting */
        return lws_service(self->ctx, -1) < 0 ? -1 : 0;
    lws_sul_schedule(self->ctx, 0, &self->wake, s_wake, (lws_usec_t)timeout_ms * LWS_US_PER_MS);
    return lws_service(self->ctx, 0) < 0 ? -1 : 0;
}
