/*
 * wsc_url.c - ws:// and wss:// URL parsing.
 */
#include "wsc_url.h"

#include <string.h>

int
wsc_url_parse(const char *s, wsc_url_t *out)
{
    const char *p, *host, *host_end, *path;
    unsigned long port = 0;
    size_t n;

    memset(out, 0, sizeof(*out));
    if (!s)
        return -1;
    for (p = s; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return -1;
    if (!strncmp(s, "ws://", 5)) {
        p = s + 5;
        out->port = 80;
    } else if (!strncmp(s, "wss://", 6)) {
        p = s + 6;
        out->tls = true;
        out->port = 443;
    } else {
        return -1;
    }
    if (*p == '[') {
        host = p + 1;
        host_end = strchr(host, ']');
        if (!host_end)
            return -1;
        p = host_end + 1;
    } else {
        host = p;
        while (*p && *p != ':' && *p != '/' && *p != '?')
            p++;
        host_end = p;
    }
    n = (size_t)(host_end - host);
    if (n == 0 || n > WSC_URL_HOST_MAX || memchr(host, '@', n))
        return -1;
    memcpy(out->host, host, n);
    if (*p == ':') {
        p++;
        if (*p < '0' || *p > '9')
            return -1;
        while (*p >= '0' && *p <= '9') {
            port = port * 10 + (unsigned long)(*p - '0');
            if (port > 65535)
                return -1;
            p++;
        }
        if (port == 0)
            return -1;
        out->port = (uint16_t)port;
    }
    if (*p && *p != '/' && *p != '?')
        return -1;
    path = *p == '/' ? p : "/ws";
    if (*p == '?') { /* ws://host?token=... : the default path, with the query */
        if (strlen(p) + 3 > WSC_URL_PATH_MAX)
            return -1;
        strcpy(out->path, "/ws");
        strcat(out->path, p);
    } else {
        if (strlen(path) > WSC_URL_PATH_MAX)
            return -1;
        strcpy(out->path, path);
    }
    out->raw = !strncmp(out->path, "/raw/", 5) && out->path[5] && out->path[5] != '?';
    return 0;
}
