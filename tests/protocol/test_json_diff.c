/*
 * test_json_diff.c - the streaming JSON codecs (protocol/json.c) against
 * the jansson reference they replaced (json_ref.c): hand-picked tricky
 * inputs must give the same result both ways (json_diff.h says what
 * "same" means), in both directions.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "json_diff.h"
#include "mpk.h"
#include "testutil.h"

static void
s_check_json(const uint8_t *in, size_t len)
{
    proto_buf_t m;

    if (!jd_json(in, len)) {
        print_error("input (%zu bytes) %.*s\n%s\n", len, (int)(len > 200 ? 200 : len),
                    (const char *)in, jd_why);
        fail();
    }
    /* what the reference made of it, back the other way */
    proto_buf_init(&m, 0);
    if (ref_json_to_mpk(in, len, &m) == PROTO_OK && !jd_mpk(proto_buf_payload(&m), m.len)) {
        print_error("mpk of %.*s\n%s\n", (int)(len > 200 ? 200 : len), (const char *)in, jd_why);
        fail();
    }
    proto_buf_fini(&m);
}

static void
s_check_cstr(const char *s)
{
    s_check_json((const uint8_t *)s, strlen(s));
}

static void
s_check_mpk_hex(const char *hex)
{
    uint8_t buf[256];
    size_t n = s_hex(hex, buf, sizeof buf);

    if (!jd_mpk(buf, n)) {
        print_error("mpk %s\n%s\n", hex, jd_why);
        fail();
    }
}

static void
test_json_values(void **state)
{
    static const char *const cases[] = {
        /* scalars and syntax */
        "",
        " ",
        "null",
        "true",
        "false",
        "nul",
        "nulll",
        "True",
        "tru",
        "truex",
        "[truex]",
        "0",
        "-0",
        "-",
        "+1",
        "01",
        "-01",
        "1.",
        ".5",
        "1.5",
        "-1.5",
        "1e5",
        "1E5",
        "1e+5",
        "1e-5",
        "1e",
        "1e+",
        "1.e5",
        "1.5e",
        "0.0",
        "-0.0",
        "1e400",
        "-1e400",
        "1e-400",
        "4.9e-324",
        "2.2250738585072014e-308",
        "1.7976931348623157e308",
        "1.7976931348623159e308",
        "123456789012345678901234567890.5",
        "0.1",
        "3.141592653589793238462643383279",
        "9223372036854775807",
        "9223372036854775808",
        "-9223372036854775808",
        "-9223372036854775809",
        "18446744073709551615",
        "18446744073709551616",
        "99999999999999999999999",
        "127",
        "128",
        "255",
        "256",
        "65535",
        "65536",
        "4294967295",
        "4294967296",
        "-32",
        "-33",
        "-128",
        "-129",
        "-32768",
        "-32769",
        "-2147483648",
        "-2147483649",
        "1 2",
        "[1 2]",
        "[1,]",
        "[,1]",
        "[]",
        "[ ]",
        "{}",
        "{ }",
        "[[]]",
        "{\"a\":1,}",
        "{,}",
        "{\"a\"}",
        "{\"a\":}",
        "{\"a\" 1}",
        "{1:2}",
        "{\"a\":1 \"b\":2}",
        "[1]x",
        "[1] ",
        " \t\r\n[1]\n",
        "\f[1]",
        "[1]\v",
        "\xef\xbb\xbf[1]",
        "[",
        "]",
        "{",
        "}",
        "\"",
        "\"abc",
        "'a'",
        "[1,2,3",
        "{\"a\":[1,{\"b\":null}]}",
        /* strings */
        "\"\"",
        "\"a\"",
        "\"\\\"\"",
        "\"\\\\\"",
        "\"\\/\"",
        "\"/\"",
        "\"\\b\\f\\n\\r\\t\"",
        "\"\\a\"",
        "\"\\x41\"",
        "\"\\u0041\"",
        "\"\\u00e9\"",
        "\"\\u00E9\"",
        "\"\\u20AC\"",
        "\"\\u0000\"",
        "\"a\\u0000b\"",
        "\"\\u001f\"",
        "\"\\u007f\"",
        "\"\\u0080\"",
        "\"\\u07ff\"",
        "\"\\u0800\"",
        "\"\\uffff\"",
        "\"\\ud83d\\ude00\"",
        "\"\\uD83D\\uDE00\"",
        "\"\\ud800\"",
        "\"\\udc00\"",
        "\"\\ud800x\"",
        "\"\\ud800\\n\"",
        "\"\\ud800\\u0041\"",
        "\"\\ud800\\ud800\"",
        "\"\\udbff\\udfff\"",
        "\"\\u12\"",
        "\"\\u12G4\"",
        "\"\\u\"",
        "\"\\",
        "\"\\\"",
        "\"\t\"",
        "\"\n\"",
        "\"\x1f\"",
        "\"\x7f\"",
        "\"\xc3\xa9\"",
        "\"\xc3\"",
        "\"\xc3(\"",
        "\"\xc0\x80\"",
        "\"\xc1\xbf\"",
        "\"\xe0\x80\x80\"",
        "\"\xe0\xa0\x80\"",
        "\"\xed\xa0\x80\"",
        "\"\xed\x9f\xbf\"",
        "\"\xef\xbf\xbf\"",
        "\"\xf0\x8f\xbf\xbf\"",
        "\"\xf0\x90\x80\x80\"",
        "\"\xf4\x8f\xbf\xbf\"",
        "\"\xf4\x90\x80\x80\"",
        "\"\xf5\x80\x80\x80\"",
        "\"\xff\"",
        "\"\x80\"",
        "\"\xe2\x82\"",
        "\"\xe2\x82\xac\"",
        "\xc3\xa9",
        "[\xc3\xa9]",
        "\"0123456789abcdef0123456789abcdef\"",
        "\"0123456789abcde\\\"0123456789abcdef\"",
        "\"aaaaaaa\\u00e9aaaaaaaaaaaaaaaaaaaaaaaa\"",
        /* keys */
        "{\"a\":1,\"a\":2}",
        "{\"a\":1,\"\\u0061\":2}",
        "{\"\":1,\"\":2}",
        "{\"\":1}",
        "{\"a\\u0000\":1}",
        "{\"\\u0000\":1}",
        "{\"a\":{\"a\":1}}",
        "{\"a\":{\"b\":1,\"b\":2}}",
        "[{\"a\":1},{\"a\":1}]",
        "{\"\\ud83d\\ude00\":1,\"\xf0\x9f\x98\x80\":2}",
        "{\"a\":1,\"b\":{\"c\":[{\"d\":1,\"d\":1}]}}",
        /* envelopes */
        "{\"id\":123,\"svc\":\"echo\",\"data\":\"hello\"}",
        "{\"svc\":\"echo\"}",
        "{\"svc\":\"echo\",\"data\":null}",
        "{\"svc\":\"Echo\"}",
        "{\"svc\":\"\"}",
        "{\"svc\":1}",
        "{}",
        "{\"id\":1}",
        "[{\"svc\":\"echo\"}]",
        "\"x\"",
        "1",
        "{\"svc\":\"e\",\"id\":-1}",
        "{\"svc\":\"e\",\"id\":-0}",
        "{\"svc\":\"e\",\"id\":1.0}",
        "{\"svc\":\"e\",\"id\":9223372036854775807}",
        "{\"svc\":\"e\",\"id\":\"\"}",
        "{\"svc\":\"e\",\"id\":\"\\u0000\"}",
        "{\"svc\":\"e\",\"id\":\"\\ud83d\\ude00\"}",
        "{\"svc\":\"e\",\"id\":"
        "\"0123456789012345678901234567890123456789012345678901234567890123\"}",
        "{\"svc\":\"e\",\"id\":"
        "\"01234567890123456789012345678901234567890123456789012345678901234\"}",
        "{\"svc\":\"e\",\"id\":\"x\",\"id\":\"y\"}",
        "{\"svc\":\"e\",\"data\":1,\"data\":2}",
        "{\"svc\":\"e\",\"id\":true}",
        "{\"svc\":\"e\",\"id\":null}",
        "{\"svc\":\"e\",\"id\":[]}",
        "{\"v\":1,\"svc\":\"e\"}",
        "{\"v\":2,\"svc\":\"e\"}",
        "{\"v\":\"1\",\"svc\":\"e\"}",
        "{\"v\":1.0,\"svc\":\"e\"}",
        "{\"op\":\"req\",\"svc\":\"e\"}",
        "{\"op\":\"REQ\"}",
        "{\"op\":\"re\\u0071\",\"svc\":\"e\"}",
        "{\"op\":1}",
        "{\"op\":\"auth\"}",
        "{\"op\":\"auth\",\"token\":\"\"}",
        "{\"op\":\"auth\",\"token\":\"t\\u0000\"}",
        "{\"op\":\"auth\",\"token\":1}",
        "{\"op\":\"sub\",\"channel\":\"c\"}",
        "{\"op\":\"sub\",\"channel\":\"c\",\"presence\":true}",
        "{\"op\":\"sub\",\"channel\":\"c\",\"presence\":1}",
        "{\"op\":\"sub\",\"channel\":\"c\",\"epoch\":\"e\",\"offset\":5}",
        "{\"op\":\"sub\",\"channel\":\"c\",\"epoch\":\"e\"}",
        "{\"op\":\"sub\",\"channel\":\"c\",\"epoch\":\"e\",\"offset\":-5}",
        "{\"op\":\"sub\",\"channel\":\"c\",\"epoch\":\"e\",\"offset\":5.5}",
        "{\"op\":\"sub\",\"channel\":\"\",\"id\":7}",
        "{\"op\":\"unsub\",\"channel\":\"a/b\"}",
        "{\"op\":\"pub\",\"channel\":\"c\",\"data\":{\"x\":[1,2.5,\"s\",null,true]}}",
        "{\"op\":\"presence\",\"channel\":\"c\"}",
        "{\"op\":\"history\",\"channel\":\"c\",\"limit\":10}",
        "{\"op\":\"history\",\"channel\":\"c\",\"limit\":4294967296}",
        "{\"op\":\"history\",\"channel\":\"c\",\"limit\":-1}",
        "{\"svc\":\"e\",\"key\":\"\"}",
        "{\"svc\":\"e\",\"key\":\"k\\u00e9\"}",
        "{\"svc\":\"e\",\"key\":\"k\",\"unknown\":{\"deep\":[[[]]]},\"x\":\"\\u0000\"}",
        "{\"svc\":\"e\",\"unknown\":{\"a\":1,\"a\":2}}",
        "{\"svc\":\"e\",\"unknown\":\"\\ud800\"}",
        "{\"svc\":\"e\",\"id\":5,\"data\":[1,}",
        "{\"svc\":\"e\",\"id\":5} x",
        "{\"\\u0073vc\":\"e\",\"\\u0064ata\":\"\\u00e9\"}",
        "{\"svc\":\"e\",\"data\":{\"k\":\"\\u0000\",\"n\":-9223372036854775808,\"f\":1e-7}}",
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        s_check_cstr(cases[i]);
}

/* JSON with s repeated n times between a head and a tail. */
static void
s_check_repeat(const char *head, const char *s, const char *sep, size_t n, const char *tail)
{
    size_t hl = strlen(head), sl = strlen(s), pl = strlen(sep), tl = strlen(tail);
    char *buf = malloc(hl + n * (sl + pl) + tl + 1), *p = buf;

    assert_non_null(buf);
    memcpy(p, head, hl);
    p += hl;
    for (size_t i = 0; i < n; i++) {
        if (i) {
            memcpy(p, sep, pl);
            p += pl;
        }
        memcpy(p, s, sl);
        p += sl;
    }
    memcpy(p, tail, tl);
    p += tl;
    s_check_json((const uint8_t *)buf, (size_t)(p - buf));
    free(buf);
}

static void
test_json_nesting(void **state)
{
    static const size_t depths[] = {1, 2, 31, 32, 33, 34, 35, 100, 2046, 2047, 2048, 2049, 2050};

    (void)state;
    for (size_t i = 0; i < sizeof depths / sizeof depths[0]; i++) {
        size_t n = depths[i];
        char *open = malloc(n * 6 + 1), *close = malloc(n + 1);

        assert_non_null(open);
        assert_non_null(close);
        memset(open, '[', n);
        open[n] = 0;
        memset(close, ']', n);
        close[n] = 0;
        s_check_repeat(open, "", "", 0, close);
        s_check_repeat(open, "1", "", 1, close);
        s_check_repeat(open, "1", "", 1, ""); /* unterminated */
        s_check_repeat(open, "", "", 0, "]"); /* deep and invalid */
        /* as an envelope's data, and as an unknown member */
        {
            char head[64 + 3 * 2100];
            snprintf(head, sizeof head, "{\"svc\":\"e\",\"id\":\"d\",\"data\":%s", open);
            s_check_repeat(head, "", "", 0, close);
            snprintf(head, sizeof head, "{\"id\":77,\"zz\":%s", open);
            s_check_repeat(head, "", "", 0, close);
            s_check_repeat(head, "", "", 0, "");
        }
        for (size_t j = 0; j < n; j++)
            memcpy(open + j * 5, "{\"a\":", 5);
        open[n * 5] = 0;
        memset(close, '}', n);
        s_check_repeat(open, "null", "", 1, close);
        s_check_repeat(open, "{\"a\":1,\"a\":2}", "", 1, close); /* deep and a repeat */
        free(open);
        free(close);
    }
}

static void
test_json_big_containers(void **state)
{
    /* past 256, objects only for the 32-bit header: keeps the ASan run short */
    static const size_t counts[] = {14, 15, 16, 17, 18, 255, 256, 65535, 65536};
    char key[64];

    (void)state;
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        size_t n = counts[i];
        char *buf = malloc(n * 24 + 64), *p = buf;

        assert_non_null(buf);
        s_check_repeat("[", "1", ",", n, "]");
        s_check_repeat("{\"svc\":\"e\",\"data\":[", "[1.5,\"x\"]", ",", n, "]}");
        /* n distinct keys, then the same with the last one repeating the
         * first / the 17th (the sorted check, and the linear one) */
        for (int rep = n == 65535 ? 3 : 0; rep < 3; rep++) {
            p = buf;
            *p++ = '{';
            for (size_t k = 0; k < n; k++) {
                size_t name = k;
                if (rep == 1 && k == n - 1)
                    name = 0;
                if (rep == 2 && k == n - 1)
                    name = n > 17 ? 16 : 0;
                snprintf(key, sizeof key, "%s\"k%zu\":%zu", k ? "," : "", name, k);
                p += strlen(strcpy(p, key));
            }
            *p++ = '}';
            s_check_json((const uint8_t *)buf, (size_t)(p - buf));
        }
        free(buf);
    }
    /* strings around the msgpack str8 / str16 / str32 boundaries */
    for (size_t n = 30; n <= 33; n++)
        s_check_repeat("\"", "a", "", n, "\"");
    for (size_t n = 254; n <= 257; n++)
        s_check_repeat("\"", "a", "", n, "\"");
    for (size_t n = 65534; n <= 65537; n++)
        s_check_repeat("\"", "a", "", n, "\"");
    s_check_repeat("\"", "\\u00e9", "", 20000, "\"");
    s_check_repeat("{\"svc\":\"e\",\"data\":\"", "\\n", "", 40000, "\"}");
}

static void
test_json_mpk_values(void **state)
{
    static const char *const cases[] = {
        "c0",
        "c2",
        "c3",
        "00",
        "7f",
        "cc ff",
        "cd ff ff",
        "ce ff ff ff ff",
        "cf 7f ff ff ff ff ff ff ff",
        "cf 80 00 00 00 00 00 00 00",
        "e0",
        "ff",
        "d0 80",
        "d3 80 00 00 00 00 00 00 00",
        "d3 ff ff ff ff ff ff ff ff",
        /* doubles: 1.0, 0.1, -0.0, 1e16, 1e17, 1e-5, 1e100, 5e-324, NaN, inf, -inf */
        "cb 3f f0 00 00 00 00 00 00",
        "cb 3f b9 99 99 99 99 99 9a",
        "cb 80 00 00 00 00 00 00 00",
        "cb 43 41 c3 79 37 e0 80 00",
        "cb 43 76 34 57 85 d8 a0 00",
        "cb 3e e4 f8 b5 88 e3 68 f1",
        "cb 54 b2 49 ad 25 94 c3 7d",
        "cb 00 00 00 00 00 00 00 01",
        "cb 7f f8 00 00 00 00 00 00",
        "cb 7f f0 00 00 00 00 00 00",
        "cb ff f0 00 00 00 00 00 00",
        "ca 3f c0 00 00",
        "ca 7f c0 00 00",
        /* strings: escapes, UTF-8 good and bad */
        "a0",
        "a1 22",
        "a1 5c",
        "a1 2f",
        "a1 7f",
        "a5 00 01 1f 08 0c",
        "a3 0a 0d 09",
        "a2 c3 a9",
        "a1 c3",
        "a2 c0 80",
        "a3 ed a0 80",
        "a4 f0 9f 98 80",
        "a4 f4 90 80 80",
        "a3 e2 80 a8",
        "d9 03 61 62 63",
        "da 00 01 22",
        /* bin, ext, reserved, truncated, trailing */
        "c4 01 00",
        "d4 01 00",
        "c7 00 05",
        "c1",
        "",
        "a2 61",
        "92 01",
        "00 00",
        "91 c4 00",
        /* containers */
        "90",
        "80",
        "91 90",
        "92 01 a1 61",
        "81 a1 61 01",
        "82 a1 61 01 a1 62 02",
        "82 a1 61 01 a1 61 02",
        "81 01 02",
        "81 c0 01",
        "81 a1 ff 01",
        "81 a0 c0",
        "81 a3 61 00 62 01",
        "82 a2 61 00 01 a2 61 00 02",
        "81 a1 61 81 a1 61 01",
        "82 a1 61 81 a1 62 01 a1 62 02",
        "82 a1 61 91 c4 00 a1 61 01",
        "82 a1 61 01 a1 61 c1",
        "dc 00 02 01 02",
        "de 00 01 a1 61 c0",
        "dd 00 00 00 01 c0",
        "df 00 00 00 00",
        "91 92 93 94 95 96 97 98 99 9a 9b 9c 9d 9e 9f 90",
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        s_check_mpk_hex(cases[i]);
}

/* msgpack nested n deep, and maps of many keys with a repeat at k, with
 * another failure (bin, too deep) after it: the first failure must win. */
static void
test_json_mpk_order(void **state)
{
    static const size_t depths[] = {31, 32, 33, 40};
    uint8_t buf[70000];
    proto_buf_t b;

    (void)state;
    for (size_t i = 0; i < sizeof depths / sizeof depths[0]; i++) {
        memset(buf, 0x91, depths[i]);
        buf[depths[i]] = 0xc0;
        assert_true(jd_mpk(buf, depths[i] + 1));
        buf[depths[i]] = 0xc4; /* and a bin inside */
        buf[depths[i] + 1] = 0;
        assert_true(jd_mpk(buf, depths[i] + 2));
    }
    for (size_t n = 14; n <= 40; n++) {
        for (size_t rep = 0; rep <= n; rep++) {
            for (int tail = 0; tail < 3; tail++) {
                proto_buf_init(&b, 0);
                mpk_write_map(&b, (uint32_t)n + 1);
                for (size_t k = 0; k < n; k++) {
                    char key[16];
                    snprintf(key, sizeof key, "k%zu", k == rep ? 0 : k);
                    mpk_write_cstr(&b, key);
                    mpk_write_uint(&b, k);
                }
                mpk_write_cstr(&b, "last");
                if (tail == 0) {
                    mpk_write_bin(&b, "x", 1);
                } else if (tail == 1) {
                    for (int d = 0; d < 40; d++)
                        mpk_write_array(&b, 1);
                    mpk_write_nil(&b);
                } else {
                    mpk_write_nil(&b);
                }
                if (!jd_mpk(proto_buf_payload(&b), b.len)) {
                    print_error("n %zu rep %zu tail %d: %s\n", n, rep, tail, jd_why);
                    fail();
                }
                proto_buf_fini(&b);
            }
        }
    }
    /* a nested map that fails (too deep) after a key equal to one of the
     * outer map's: its keys must not count as the outer map's repeats */
    for (size_t n = 15; n <= 20; n++) {
        proto_buf_init(&b, 0);
        mpk_write_map(&b, (uint32_t)n + 1);
        for (size_t k = 0; k < n; k++) {
            char key[16];
            snprintf(key, sizeof key, "k%zu", k);
            mpk_write_cstr(&b, key);
            mpk_write_uint(&b, k);
        }
        mpk_write_cstr(&b, "inner");
        mpk_write_map(&b, 1);
        mpk_write_cstr(&b, "k0");
        for (int d = 0; d < 40; d++)
            mpk_write_array(&b, 1);
        mpk_write_nil(&b);
        if (!jd_mpk(proto_buf_payload(&b), b.len)) {
            print_error("nested n %zu: %s\n", n, jd_why);
            fail();
        }
        proto_buf_fini(&b);
    }
    (void)buf;
}

/* The documented difference: a raw NUL byte after a number or literal,
 * which jansson drops; here it is invalid JSON. */
static void
test_json_raw_nul_refused(void **state)
{
    static const struct {
        const char *s;
        size_t len;
    } cases[] = {
        {"1\0", 2},     {"true\0", 5}, {"[1\0]", 4},      {"{\"svc\":\"e\",\"id\":1\0}", 19},
        {"\"a\0\"", 4}, {"\0", 1},     {"[null\0,1]", 9},
    };
    proto_buf_t m, s;
    proto_envelope_t env;
    const char *err;

    (void)state;
    proto_buf_init(&m, 0);
    proto_buf_init(&s, 0);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const uint8_t *in = (const uint8_t *)cases[i].s;
        assert_int_equal(proto_json_to_mpk(in, cases[i].len, &m), PROTO_MALFORMED);
        assert_int_equal(m.len, 0);
        assert_int_equal(proto_envelope_decode(PROTO_ENC_JSON, in, cases[i].len, &s, &env, &err),
                         PROTO_MALFORMED);
        assert_string_equal(err, "invalid JSON");
        if (!jd_json(in, cases[i].len)) {
            print_error("case %zu: %s\n", i, jd_why);
            fail();
        }
    }
    /* the reference really does accept the first: the exception is needed */
    assert_int_equal(ref_json_to_mpk((const uint8_t *)"1\0", 2, &m), PROTO_OK);
    proto_buf_fini(&m);
    proto_buf_fini(&s);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_values),         cmocka_unit_test(test_json_nesting),
        cmocka_unit_test(test_json_big_containers), cmocka_unit_test(test_json_mpk_values),
        cmocka_unit_test(test_json_mpk_order),      cmocka_unit_test(test_json_raw_nul_refused),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
