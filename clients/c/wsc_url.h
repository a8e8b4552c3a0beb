/*
 * wsc_url.h - ws:// and wss:// URLs.
 *
 *   ws://HOST[:PORT][/PATH[?QUERY]]     PORT defaults to 80, PATH to /ws
 *   wss://HOST[:PORT][/PATH[?QUERY]]    PORT defaults to 443
 *
 * HOST is a name, an IPv4 address or a bracketed IPv6 address. A PATH
 * starting with /raw/ names a raw endpoint (no envelope).
 *
 * Pure functions.
 */
#ifndef WSC_URL_H
#define WSC_URL_H

#include <stdbool.h>
#include <stdint.h>

#define WSC_URL_HOST_MAX 255
#define WSC_URL_PATH_MAX 1023

typedef struct {
    bool tls;
    bool raw; /* the path is a raw endpoint: /raw/... */
    uint16_t port;
    char host[WSC_URL_HOST_MAX + 1]; /* without brackets */
    char path[WSC_URL_PATH_MAX + 1]; /* with the query, if any */
} wsc_url_t;

/* 0, or -1 when s is not such a URL (scheme, empty host, bad port,
 * over-long parts, spaces or control characters). */
int wsc_url_parse(const char *s, wsc_url_t *out);

#endif
