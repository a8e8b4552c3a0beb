/*
 * bench_json.c - fixed work on the JSON paths, to be counted with
 * callgrind (instructions are load-independent; docs/benchmarks.md):
 *
 *   valgrind --tool=callgrind --callgrind-out-file=F build/tests/protocol/bench_json MODE N
 *
 * MODE: echo (decode a 64-byte-data echo request), auth (decode an auth
 * message with a ~300-byte token), reply (encode the echo reply); each
 * with the new codecs, or ref-echo, ref-auth, ref-reply with the jansson
 * reference. Divide the Ir of the mode's function by N. Not a test.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_ref.h"
#include "mpk.h"

static const char s_echo[] =
    "{\"id\":123,\"svc\":\"echo\",\"data\":"
    "\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"}";

int
main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "echo";
    long n = argc > 2 ? atol(argv[2]) : 10000;
    bool ref = strncmp(mode, "ref-", 4) == 0;
    proto_buf_t scratch, out;
    proto_envelope_t env;
    const char *err;
    char auth[512];
    proto_id_t id = {.kind = PROTO_ID_UINT, .u = 123};
    unsigned long sum = 0;

    if (ref)
        mode += 4;
    /* a JWT-shaped token: header.payload.signature, ~300 bytes */
    snprintf(auth, sizeof auth,
             "{\"op\":\"auth\",\"id\":1,\"token\":\"eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9."
             "eyJzdWIiOiJ1c2VyLTEyMzQ1Njc4OSIsImV4cCI6MTk5OTk5OTk5OSwiaWF0IjoxNzAwMDAwMDAwLCJ"
             "jaGFubmVscyI6WyJyb29tOioiLCJ1c2VyOnVzZXItMTIzNDU2Nzg5Il0sImlzcyI6IndzZ2F0ZSJ9."
             "MEUCIQDx3n0aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789abcdefAIgUvWxYz0123456789ABCDEF"
             "ghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrs\"}");
    proto_buf_init(&scratch, 0);
    proto_buf_init(&out, 16);
    /* the reply's data: the echo request's data as msgpack */
    proto_envelope_decode(PROTO_ENC_JSON, (const uint8_t *)s_echo, strlen(s_echo), &scratch, &env,
                          &err);
    proto_buf_t data;
    proto_buf_init(&data, 0);
    proto_buf_append(&data, env.data.ptr, env.data.len);

    for (long i = 0; i < n; i++) {
        proto_rc_t rc;
        if (strcmp(mode, "echo") == 0 || strcmp(mode, "auth") == 0) {
            const char *in = mode[0] == 'e' ? s_echo : auth;
            rc = (ref ? ref_envelope_decode : proto_envelope_decode)(
                PROTO_ENC_JSON, (const uint8_t *)in, strlen(in), &scratch, &env, &err);
            sum += env.data.len + env.token.len;
        } else {
            proto_buf_reset(&out);
            rc = (ref ? ref_envelope_encode_res : proto_envelope_encode_res)(
                PROTO_ENC_JSON, &id, proto_span(proto_buf_payload(&data), data.len), &out);
            sum += out.len;
        }
        if (rc != PROTO_OK) {
            fprintf(stderr, "bench_json: %s failed: %d\n", mode, rc);
            return 1;
        }
    }
    printf("%s%s x%ld: %lu bytes\n", ref ? "ref-" : "", mode, n, sum);
    proto_buf_fini(&scratch);
    proto_buf_fini(&out);
    proto_buf_fini(&data);
    return 0;
}
