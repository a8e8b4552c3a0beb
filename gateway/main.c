/*
 * main.c - the wsgate gateway daemon.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include <ev.h>

#include "config.h"
#include "gateway.h"
#include "log.h"

int
main(int argc, char **argv)
{
    struct ev_loop *loop;
    gw_config_t cfg;
    gw_t *gw;
    int rc;

    gw_config_defaults(&cfg);
    rc = gw_config_parse(&cfg, argc, argv);
    if (rc)
        return rc > 0 ? 0 : 2;
    gw_log_set_level(GW_LOG_WARN + cfg.verbose);
    signal(SIGPIPE, SIG_IGN);

    /* epoll: lws's default poll() scans every socket on every wake-up. */
    loop = ev_default_loop(EVBACKEND_EPOLL);
    if (!loop) {
        fprintf(stderr, "wsgate: no epoll event loop\n");
        return 1;
    }
    gw = gw_new(&cfg, loop);
    if (!gw)
        return 1;
    fprintf(stderr, "wsgate: listening on ws://%s:%d/ws, admin http://%s:%d, backend %s\n",
            cfg.listen_host, cfg.listen_port, cfg.admin_host, cfg.admin_port, cfg.backend);
    gw_run(gw);
    gw_destroy(&gw);
    ev_loop_destroy(loop);
    fprintf(stderr, "wsgate: stopped\n");
    return 0;
}
