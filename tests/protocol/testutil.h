/*
 * testutil.h - helpers shared by the protocol/ tests. Include after
 * <cmocka.h> (the helpers assert).
 */
#ifndef WSGATE_TESTUTIL_H
#define WSGATE_TESTUTIL_H

#include <stdio.h>
#include <string.h>

#include "proto.h"

/* Parses hex with optional spaces into out; returns the byte count. */
static inline size_t
s_hex(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = 0;

    while (*hex) {
        unsigned v;
        if (*hex == ' ') {
            hex++;
            continue;
        }
        assert_true(sscanf(hex, "%2x", &v) == 1);
        assert_true(n < cap);
        out[n++] = (uint8_t)v;
        hex += 2;
    }
    return n;
}

static inline proto_span_t
s_cspan(const char *s)
{
    return proto_span(s, strlen(s));
}

#endif
