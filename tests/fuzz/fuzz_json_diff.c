/*
 * fuzz_json_diff.c - libFuzzer differential target: the streaming JSON
 * codecs (protocol/json.c) against the jansson reference they replaced
 * (tests/protocol/json_ref.c), both directions.
 *
 * Each input is tried as JSON text (json_to_mpk and the envelope decoder)
 * and as msgpack (mpk_to_json and every JSON frame encoder); and what the
 * reference made of it as JSON is tried back as msgpack, so well-formed
 * msgpack maps and arrays get exercised too. Any difference aborts
 * (tests/protocol/json_diff.h says what "same" means).
 *
 *   ./fuzz_json_diff -max_len=8192 -max_total_time=600 corpus/
 */
#include <stdio.h>
#include <stdlib.h>

#include "json_diff.h"

static void
s_check(bool same, const uint8_t *data, size_t size)
{
    if (same)
        return;
    fprintf(stderr, "fuzz_json_diff: %s\ninput (%zu bytes): %.*s\n", jd_why, size,
            (int)(size > 300 ? 300 : size), (const char *)data);
    abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    proto_buf_t m;

    s_check(jd_json(data, size), data, size);
    s_check(jd_mpk(data, size), data, size);
    proto_buf_init(&m, 0);
    if (ref_json_to_mpk(data, size, &m) == PROTO_OK)
        s_check(jd_mpk(proto_buf_payload(&m), m.len), data, size);
    proto_buf_fini(&m);
    return 0;
}
