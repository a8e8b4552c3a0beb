#include "metrics.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

static const char *s_close_names[GW_CLOSE__COUNT] = {
    "normal",      "too_large",    "bad_utf8",      "slow_consumer", "idle_timeout",
    "no_service",  "overloaded",   "worker",        "shutdown",      "error",
    "auth_failed", "auth_timeout", "token_expired",
};

static const double s_bounds[GW_HIST_N] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                           0.025,  0.05,    0.1,    0.25,  0.5,    1.0,   5.0};

void
gw_hist_observe(gw_hist_t *h, double seconds)
{
    int i = 0;

    /* 14 bounds: a linear scan beats a binary search's branches here */
    while (i < GW_HIST_N && seconds > s_bounds[i])
        i++;
    if (i < GW_HIST_N)
        h->le[i]++;
    h->count++;
    h->sum += seconds;
}

const char *
gw_close_reason_name(gw_close_reason_t r)
{
    return r < GW_CLOSE__COUNT ? s_close_names[r] : "unknown";
}

static int
s_put(proto_buf_t *out, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(line))
        return -1;
    return proto_buf_append(out, line, (size_t)n);
}

static int
s_metric(proto_buf_t *out, const char *name, const char *type, const char *help, uint64_t v)
{
    return s_put(out, "# HELP %s %s\n# TYPE %s %s\n%s %" PRIu64 "\n", name, help, name, type, name,
                 v);
}

static int
s_hist(proto_buf_t *out, const char *name, const char *help, const gw_hist_t *h)
{
    uint64_t cum = 0;
    int rc, i;

    rc = s_put(out, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    for (i = 0; i < GW_HIST_N; i++) {
        cum += h->le[i];
        rc |= s_put(out, "%s_bucket{le=\"%g\"} %" PRIu64 "\n", name, s_bounds[i], cum);
    }
    rc |= s_put(out, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n%s_sum %.6f\n%s_count %" PRIu64 "\n",
                name, h->count, name, h->sum, name, h->count);
    return rc;
}

int
gw_metrics_render_counters(const gw_metrics_t *m, unsigned workers_live, proto_buf_t *out)
{
    int rc = 0, i;

    rc |= s_metric(out, "wsgate_connections", "gauge", "Client connections open now.",
                   m->connections);
    rc |= s_metric(out, "wsgate_connections_opened_total", "counter",
                   "Client connections established.", m->opened);
    rc |= s_put(out, "# HELP wsgate_connections_closed_total Client connections closed, by "
                     "reason.\n# TYPE wsgate_connections_closed_total counter\n");
    for (i = 0; i < GW_CLOSE__COUNT; i++)
        rc |= s_put(out, "wsgate_connections_closed_total{reason=\"%s\"} %" PRIu64 "\n",
                    s_close_names[i], m->closed[i]);
    rc |= s_put(out,
                "# HELP wsgate_connections_rejected_total Upgrades refused at the "
                "handshake.\n# TYPE wsgate_connections_rejected_total counter\n"
                "wsgate_connections_rejected_total{reason=\"max_conns\"} %" PRIu64 "\n"
                "wsgate_connections_rejected_total{reason=\"path\"} %" PRIu64 "\n"
                "wsgate_connections_rejected_total{reason=\"origin\"} %" PRIu64 "\n",
                m->rejected_max_conns, m->rejected_path, m->rejected_origin);
    rc |= s_put(out,
                "# HELP wsgate_auth_total Authentication answers from the auth service, by "
                "result.\n# TYPE wsgate_auth_total counter\n"
                "wsgate_auth_total{result=\"ok\"} %" PRIu64 "\n"
                "wsgate_auth_total{result=\"refreshed\"} %" PRIu64 "\n"
                "wsgate_auth_total{result=\"failed\"} %" PRIu64 "\n"
                "wsgate_auth_total{result=\"transient\"} %" PRIu64 "\n",
                m->auth_ok, m->auth_refreshed, m->auth_failed, m->auth_transient);
    rc |= s_metric(out, "wsgate_unauthenticated_total", "counter",
                   "Messages refused because the connection had not authenticated.",
                   m->unauthenticated);
    rc |= s_metric(out, "wsgate_channels", "gauge", "Channels with a subscriber on this gateway.",
                   m->channels);
    rc |= s_metric(out, "wsgate_subscriptions", "gauge", "Active subscriptions on this gateway.",
                   m->subscriptions);
    rc |= s_metric(out, "wsgate_publications_total", "counter",
                   "Publications and presence events received from channel actors.", m->pubs_in);
    rc |= s_metric(out, "wsgate_publications_unrouted_total", "counter",
                   "Publications for a channel with no subscriber here.", m->pubs_no_subscribers);
    rc |= s_metric(out, "wsgate_deliveries_total", "counter",
                   "Channel frames queued to subscribers.", m->deliveries);
    rc |= s_put(out,
                "# HELP wsgate_http_publish_total POST /publish on the admin listener, by "
                "result.\n# TYPE wsgate_http_publish_total counter\n"
                "wsgate_http_publish_total{result=\"ok\"} %" PRIu64 "\n"
                "wsgate_http_publish_total{result=\"unauthorized\"} %" PRIu64 "\n"
                "wsgate_http_publish_total{result=\"bad_request\"} %" PRIu64 "\n"
                "wsgate_http_publish_total{result=\"failed\"} %" PRIu64 "\n",
                m->http_publish[0], m->http_publish[1], m->http_publish[2], m->http_publish[3]);
    rc |= s_put(out,
                "# HELP wsgate_dev_tokens_total POST /dev/token (development token issuer), by "
                "result.\n# TYPE wsgate_dev_tokens_total counter\n"
                "wsgate_dev_tokens_total{result=\"ok\"} %" PRIu64 "\n"
                "wsgate_dev_tokens_total{result=\"bad_request\"} %" PRIu64 "\n"
                "wsgate_dev_tokens_total{result=\"failed\"} %" PRIu64 "\n",
                m->dev_tokens[0], m->dev_tokens[1], m->dev_tokens[2]);
    rc |= s_metric(out, "wsgate_messages_in_total", "counter", "Client messages received.",
                   m->msgs_in);
    rc |= s_metric(out, "wsgate_bytes_in_total", "counter", "Client payload bytes received.",
                   m->bytes_in);
    rc |= s_metric(out, "wsgate_messages_out_total", "counter", "Frames written to clients.",
                   m->msgs_out);
    rc |= s_metric(out, "wsgate_bytes_out_total", "counter", "Payload bytes written to clients.",
                   m->bytes_out);
    rc |= s_metric(out, "wsgate_batched_sends_total", "counter",
                   "io_uring sends of the write batches (io-uring = true).", m->batch_sends);
    rc |= s_metric(out, "wsgate_coalesced_frames_total", "counter",
                   "Frames that joined an earlier frame's send to the same client.",
                   m->batch_coalesced);
    rc |=
        s_metric(out, "wsgate_partial_sends_total", "counter",
                 "Batched sends that found the socket full: lws sends the rest.", m->batch_partial);
    rc |= s_metric(out, "wsgate_requests_total", "counter", "Messages forwarded to workers.",
                   m->requests);
    rc |= s_metric(out, "wsgate_replies_total", "counter", "Worker replies delivered.", m->replies);
    rc |= s_metric(out, "wsgate_pushes_total", "counter", "Worker pushes queued to clients.",
                   m->pushes);
    rc |= s_metric(out, "wsgate_inflight", "gauge", "Requests waiting for a worker.", m->inflight);
    rc |= s_put(out, "# HELP wsgate_errors_total Error replies the gateway made itself, by "
                     "code.\n# TYPE wsgate_errors_total counter\n");
    for (i = 0; i < PROTO_ERR__COUNT; i++)
        rc |= s_put(out, "wsgate_errors_total{code=\"%s\"} %" PRIu64 "\n",
                    proto_err_name((proto_err_t)i), m->errors[i]);
    rc |= s_put(out,
                "# HELP wsgate_replies_dropped_total Worker messages that reached no client.\n"
                "# TYPE wsgate_replies_dropped_total counter\n"
                "wsgate_replies_dropped_total{reason=\"conn_gone\"} %" PRIu64 "\n"
                "wsgate_replies_dropped_total{reason=\"unknown_request\"} %" PRIu64 "\n"
                "wsgate_replies_dropped_total{reason=\"no_id\"} %" PRIu64 "\n"
                "wsgate_replies_dropped_total{reason=\"unencodable\"} %" PRIu64 "\n"
                "wsgate_replies_dropped_total{reason=\"too_large\"} %" PRIu64 "\n",
                m->dropped_conn_gone, m->dropped_unknown_request, m->dropped_no_id,
                m->dropped_unencodable, m->dropped_too_large);
    rc |= s_metric(out, "wsgate_backend_malformed_total", "counter",
                   "Backend messages dropped as malformed.", m->backend_malformed);
    rc |= s_metric(out, "wsgate_backend_bad_version_total", "counter",
                   "Backend messages with an unknown protocol version.", m->backend_bad_version);
    rc |= s_metric(out, "wsgate_backend_send_failed_total", "counter",
                   "Sends to workers refused (queue full or peer gone).", m->backend_send_failed);
    rc |= s_hist(out, "wsgate_handshake_seconds",
                 "From TCP accept to the websocket upgrade completed.", &m->handshake);
    rc |= s_hist(out, "wsgate_request_seconds",
                 "From a request sent to a worker to its answer (result or error) received.",
                 &m->request);
    rc |= s_metric(out, "wsgate_workers", "gauge", "Live workers.", workers_live);
    rc |= s_metric(out, "wsgate_workers_joined_total", "counter", "Workers that joined.",
                   m->workers_joined);
    rc |= s_metric(out, "wsgate_workers_left_total", "counter", "Workers forgotten.",
                   m->workers_left);
    rc |= s_metric(out, "wsgate_workers_drained_total", "counter",
                   "Workers that announced a drain.", m->workers_drained);
    rc |= s_metric(out, "wsgate_requests_retried_total", "counter",
                   "Requests of a lost worker sent again to another (retry-safe services).",
                   m->retried);
    return rc ? -1 : 0;
}
