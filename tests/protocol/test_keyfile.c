/* tests/protocol/test_keyfile.c - CURVE key files and allow-lists. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "keyfile.h"

#define K1 "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID"
#define K2 "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]y#7" /* Z85 has '#' */

static char s_path[64];

static const char *
s_write(const char *text)
{
    FILE *f;
    int fd;

    snprintf(s_path, sizeof(s_path), "/tmp/wsgate-keyfile-XXXXXX");
    fd = mkstemp(s_path);
    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return s_path;
}

static void
test_z85_valid(void **state)
{
    (void)state;
    assert_true(proto_z85_key_valid(K1, 40));
    assert_false(proto_z85_key_valid(K1, 39));
    assert_false(proto_z85_key_valid("Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hI ", 40));
    assert_false(proto_z85_key_valid("Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hI~", 40));
}

static void
test_allow_list(void **state)
{
    char(*keys)[PROTO_Z85_KEY_LEN + 1] = NULL;
    char err[256];
    size_t n = 0;

    (void)state;
    s_write("# workers\n\n" K1 "   # worker-1\n  " K2 "\r\n");
    assert_int_equal(proto_key_allow_load(s_path, &keys, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 2);
    assert_string_equal(keys[0], K1);
    assert_string_equal(keys[1], K2);
    free(keys);
    unlink(s_path);

    s_write("# none yet\n");
    keys = NULL;
    assert_int_equal(proto_key_allow_load(s_path, &keys, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 0);
    free(keys);
    unlink(s_path);

    s_write(K1 "\nnot-a-key\n");
    assert_int_equal(proto_key_allow_load(s_path, &keys, &n, err, sizeof(err)), -1);
    assert_non_null(strstr(err, ":2: "));
    unlink(s_path);

    assert_int_equal(proto_key_allow_load("/nonexistent/x", &keys, &n, err, sizeof(err)), -1);
}

static void
test_key_file(void **state)
{
    char key[PROTO_Z85_KEY_LEN + 1], err[256];
    bool wr = true;

    (void)state;
    s_write(K1 "\n");
    chmod(s_path, 0600);
    assert_int_equal(proto_key_read(s_path, key, &wr, err, sizeof(err)), 0);
    assert_string_equal(key, K1);
    assert_false(wr);
    chmod(s_path, 0644);
    assert_int_equal(proto_key_read(s_path, key, &wr, err, sizeof(err)), 0);
    assert_true(wr);
    unlink(s_path);

    s_write("secret: " K2 "\n");
    assert_int_equal(proto_key_read(s_path, key, NULL, err, sizeof(err)), 0);
    assert_string_equal(key, K2);
    unlink(s_path);

    s_write(K1 "\n" K2 "\n");
    assert_int_equal(proto_key_read(s_path, key, NULL, err, sizeof(err)), -1);
    unlink(s_path);
    s_write("\n");
    assert_int_equal(proto_key_read(s_path, key, NULL, err, sizeof(err)), -1);
    unlink(s_path);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_z85_valid),
        cmocka_unit_test(test_allow_list),
        cmocka_unit_test(test_key_file),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
