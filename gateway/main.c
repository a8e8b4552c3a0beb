/*
 * main.c - the wsgate gateway daemon.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include <ev.h>

#include "../protocol/keyfile.h"
#include "config.h"
#include "gateway.h"
#include "log.h"

/* --check-config: the settings are valid; the CURVE files must be too. */
static int
s_check(const gw_config_t *cfg)
{
    char key[PROTO_Z85_KEY_LEN + 1], err[600];
    char(*keys)[PROTO_Z85_KEY_LEN + 1] = NULL;
    bool world = false;
    size_t n = 0;

    if (cfg->curve_secret_file[0]) {
        if (proto_key_read(cfg->curve_secret_file, key, &world, err, sizeof(err)) ||
            proto_key_allow_load(cfg->curve_allow_file, &keys, &n, err, sizeof(err))) {
            fprintf(stderr, "wsgate: %s\n", err);
            return 2;
        }
        free(keys);
        if (world)
            fprintf(stderr, "wsgate: warning: %s is readable by others (chmod 600 it)\n",
                    cfg->curve_secret_file);
    }
    gw_config_print(cfg, stdout);
    fprintf(stderr, "wsgate: configuration OK\n");
    return 0;
}

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
    if (cfg.check_config)
        return s_check(&cfg);
    proto_log_init("wsgate", cfg.log_json, GW_LOG_INFO + cfg.verbose);
    proto_log_set_id(cfg.id);
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
    gw_log(GW_LOG_INFO, "listening on ws://%s:%d/ws, admin http://%s:%d, backend %s",
           cfg.listen_host, cfg.listen_port, cfg.admin_host, cfg.admin_port, cfg.backend);
    if (cfg.auth_required)
        gw_log(GW_LOG_INFO, "auth required (service %s)%s", cfg.auth_service,
               cfg.n_raw ? "; raw endpoints anonymous (raw-auth = none)" : "");
    else
        gw_log(GW_LOG_WARN, "auth none: every client is anonymous (development setting)");
    if (cfg.dev_token_service[0])
        gw_log(GW_LOG_WARN,
               "DEVELOPMENT token issuer on: POST /dev/token gives anyone a token for any user "
               "(service %s). Never in production.",
               cfg.dev_token_service);
    if (!cfg.n_origins)
        gw_log(GW_LOG_WARN, "no origin allow-list: browser pages from any site may connect");
    gw_run(gw);
    gw_destroy(&gw);
    ev_loop_destroy(loop);
    gw_log(GW_LOG_INFO, "stopped");
    return 0;
}
