/*
 * test_wsc_link.c - the C client's lws adapter (clients/c/wsc_link.c),
 * without a server: bounded waits, and a refused connection reported.
 *
 * lws 4.1 sleeps until its next timer; the link's bounded wait is a timer
 * of its own. When that timer fell due before lws looked (a wait of 0, or
 * a thread descheduled past a short bound), lws ran it and then slept for
 * its default of days: wsc_service() never returned. The first test hangs
 * on that bug, and SIGALRM ends it as a failure. It asserts no duration.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "wsc_link.h"

typedef struct {
    int opened, closed, code;
    char reason[128];
} events_t;

static void
s_opened(void *u)
{
    ((events_t *)u)->opened++;
}

static void
s_message(void *u, const uint8_t *p, size_t len, bool binary)
{
    (void)u;
    (void)p;
    (void)len;
    (void)binary;
}

static void
s_oversized(void *u)
{
    (void)u;
}

static int
s_writeable(void *u)
{
    (void)u;
    return 0;
}

static void
s_closed(void *u, int code, const char *reason)
{
    events_t *e = u;

    e->closed++;
    e->code = code;
    strncpy(e->reason, reason, sizeof(e->reason) - 1);
}

static const wsc_link_ops_t s_ops = {s_opened, s_message, s_oversized, s_writeable, s_closed};
static const wsc_link_config_t s_cfg = {NULL, false, 65536, 5000};

static void
test_short_waits_always_return(void **state)
{
    events_t ev = {0};
    wsc_link_t *l = wsc_link_new(&s_cfg, &s_ops, &ev);
    int i;

    (void)state;
    assert_non_null(l);
    alarm(20); /* a wait that never ends kills the test */
    for (i = 0; i < 300; i++)
        assert_int_equal(wsc_link_service(l, i % 3), 0); /* 0, 1 and 2 ms */
    alarm(0);
    wsc_link_destroy(&l);
    assert_null(l);
}

static void
test_a_refused_connection_is_reported_once(void **state)
{
    events_t ev = {0};
    wsc_link_t *l = wsc_link_new(&s_cfg, &s_ops, &ev);
    wsc_url_t url;
    int i;

    (void)state;
    assert_non_null(l);
    assert_int_equal(wsc_url_parse("ws://127.0.0.1:1/ws", &url), 0); /* nothing listens */
    wsc_link_connect(l, &url, "wsgate.v1.msgpack");
    alarm(60);
    for (i = 0; i < 500 && !ev.closed; i++)
        wsc_link_service(l, 10);
    for (i = 0; i < 10; i++) /* and nothing more comes */
        wsc_link_service(l, 1);
    alarm(0);
    assert_int_equal(ev.opened, 0);
    assert_int_equal(ev.closed, 1);
    assert_int_equal(ev.code, 1006);
    assert_false(wsc_link_busy(l));
    /* the link can try again, and reports again */
    wsc_link_connect(l, &url, NULL);
    alarm(60);
    for (i = 0; i < 500 && ev.closed < 2; i++)
        wsc_link_service(l, 10);
    alarm(0);
    assert_int_equal(ev.closed, 2);
    wsc_link_destroy(&l);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_short_waits_always_return),
        cmocka_unit_test(test_a_refused_connection_is_reported_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
