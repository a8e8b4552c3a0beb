#include "settings.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

enum { S_CONFIG = 1000, S_CHECK, S_HELP, S_VERBOSE };
enum { S_LAYER_NONE = 0, S_LAYER_FILE, S_LAYER_ENV, S_LAYER_FLAG };

typedef struct {
    const proto_settings_t *ps;
    void *obj;
    unsigned char *layer; /* per setting: the layer that last set it */
    const char *file;
    char err[512]; /* the first problem in the file */
} s_ctx_t;

int
proto_setting_set_num(void *obj, const proto_setting_t *s, const char *val, char *err, size_t errsz)
{
    unsigned long long v;
    char *end;

    errno = 0;
    v = strtoull(val, &end, 10);
    if (errno || *end || end == val || val[0] < '0' || val[0] > '9' || v < s->min || v > s->max) {
        snprintf(err, errsz, "expected a number from %llu to %llu, got '%s'",
                 (unsigned long long)s->min, (unsigned long long)s->max, val);
        return -1;
    }
    if (s->size == sizeof(uint32_t))
        *(uint32_t *)((char *)obj + s->off) = (uint32_t)v;
    else
        *(uint64_t *)((char *)obj + s->off) = v;
    return 0;
}

void
proto_setting_show_num(const void *obj, const proto_setting_t *s, FILE *f)
{
    unsigned long long v = s->size == sizeof(uint32_t)
                               ? *(const uint32_t *)((const char *)obj + s->off)
                               : *(const uint64_t *)((const char *)obj + s->off);

    fprintf(f, "%s = %llu\n", s->name, v);
}

int
proto_setting_set_str(void *obj, const proto_setting_t *s, const char *val, char *err, size_t errsz)
{
    if (strlen(val) >= s->size) {
        snprintf(err, errsz, "at most %zu characters", s->size - 1);
        return -1;
    }
    memcpy((char *)obj + s->off, val, strlen(val) + 1);
    return 0;
}

void
proto_setting_show_str(const void *obj, const proto_setting_t *s, FILE *f)
{
    const char *v = (const char *)obj + s->off;

    if (v[0])
        fprintf(f, "%s = %s\n", s->name, v);
}

int
proto_setting_set_bool(void *obj, const proto_setting_t *s, const char *val, char *err,
                       size_t errsz)
{
    static const char *yes[] = {"1", "true", "yes", "on"}, *no[] = {"0", "false", "no", "off"};
    bool *b = (bool *)((char *)obj + s->off);
    size_t i;

    for (i = 0; i < 4; i++) {
        if (!strcasecmp(val, yes[i])) {
            *b = true;
            return 0;
        }
        if (!strcasecmp(val, no[i])) {
            *b = false;
            return 0;
        }
    }
    snprintf(err, errsz, "expected true or false, got '%s'", val);
    return -1;
}

void
proto_setting_show_bool(const void *obj, const proto_setting_t *s, FILE *f)
{
    fprintf(f, "%s = %s\n", s->name,
            *(const bool *)((const char *)obj + s->off) ? "true" : "false");
}

static const proto_setting_t *
s_find(const proto_settings_t *ps, const char *name)
{
    size_t i;

    for (i = 0; i < ps->n; i++)
        if (!strcmp(ps->tab[i].name, name))
            return &ps->tab[i];
    return NULL;
}

/* One value from one layer; the list of a repeatable setting starts over
 * when a higher layer first gives it. */
static int
s_apply(s_ctx_t *c, const proto_setting_t *s, int layer, const char *val, char *err, size_t errsz)
{
    size_t i = (size_t)(s - c->ps->tab);

    if (s->reset && c->layer[i] != layer)
        s->reset(c->obj, s);
    c->layer[i] = (unsigned char)layer;
    return s->set(c->obj, s, val, err, errsz);
}

static int
s_ini_handler(void *user, const char *section, const char *name, const char *value)
{
    s_ctx_t *c = user;
    const proto_setting_t *s;
    char err[400];

    if (c->ps->other_section && !strcmp(section, c->ps->other_section))
        return 1;
    if (c->err[0])
        return 0; /* keep the first problem; inih returns its line */
    if (strcmp(section, c->ps->section)) {
        snprintf(c->err, sizeof(c->err), "'%s' outside a [%s] section", name, c->ps->section);
        return 0;
    }
    s = s_find(c->ps, name);
    if (!s) {
        snprintf(c->err, sizeof(c->err), "unknown key '%s'", name);
        return 0;
    }
    if (s_apply(c, s, S_LAYER_FILE, value, err, sizeof(err))) {
        snprintf(c->err, sizeof(c->err), "%s: %s", name, err);
        return 0;
    }
    return 1;
}

static int
s_load_file(s_ctx_t *c, const char *path)
{
    int rc = ini_parse(path, s_ini_handler, c);

    if (rc == -1) {
        fprintf(stderr, "%s: %s: %s\n", c->ps->prog, path, strerror(errno));
        return -1;
    }
    if (rc == -2) {
        fprintf(stderr, "%s: %s: out of memory\n", c->ps->prog, path);
        return -1;
    }
    if (rc > 0) {
        fprintf(stderr, "%s: %s:%d: %s\n", c->ps->prog, path, rc,
                c->err[0] ? c->err : "syntax error (expected key = value or [section])");
        return -1;
    }
    return 0;
}

static int
s_load_env(s_ctx_t *c)
{
    char var[128], err[400];
    size_t i, j, plen = strlen(c->ps->env_prefix);

    for (i = 0; i < c->ps->n; i++) {
        const proto_setting_t *s = &c->ps->tab[i];
        const char *val;

        snprintf(var, sizeof(var), "%s", c->ps->env_prefix);
        for (j = 0; s->name[j] && plen + j < sizeof(var) - 1; j++)
            var[plen + j] = s->name[j] == '-' ? '_' : (char)(s->name[j] & ~0x20);
        var[plen + j] = '\0';
        val = getenv(var);
        if (!val)
            continue;
        if (s->reset) {
            char *copy = strdup(val), *save = NULL, *one;
            int rc = 0;

            if (!copy)
                return -1;
            s->reset(c->obj, s);
            c->layer[i] = S_LAYER_ENV;
            for (one = strtok_r(copy, ",", &save); one && !rc; one = strtok_r(NULL, ",", &save))
                rc = s_apply(c, s, S_LAYER_ENV, one, err, sizeof(err));
            free(copy);
            if (rc) {
                fprintf(stderr, "%s: %s: %s\n", c->ps->prog, var, err);
                return -1;
            }
        } else if (s_apply(c, s, S_LAYER_ENV, val, err, sizeof(err))) {
            fprintf(stderr, "%s: %s: %s\n", c->ps->prog, var, err);
            return -1;
        }
    }
    return 0;
}

static void
s_usage(const proto_settings_t *ps, FILE *f)
{
    char left[64];
    size_t i;

    fprintf(f, "usage: %s [options]\n", ps->prog);
    for (i = 0; i < ps->n; i++) {
        const proto_setting_t *s = &ps->tab[i];

        snprintf(left, sizeof(left), "--%s%s%s", s->name, s->metavar ? " " : "",
                 s->metavar ? s->metavar : "");
        fprintf(f, "  %-26s %s\n", left, s->help);
    }
    fprintf(f, "  %-26s %s\n", "--config FILE", "read settings from the INI file's section");
    fprintf(f, "  %-26s [%s]; environment %s<NAME> overrides it, flags override both\n", "",
            ps->section, ps->env_prefix);
    fprintf(f, "  %-26s %s\n", "--check-config", "validate, print the effective settings, exit");
    fprintf(f, "  %-26s %s\n", "-v, --verbose", "more logging (repeatable)");
}

int
proto_settings_parse(const proto_settings_t *ps, void *obj, int argc, char **argv, int *verbose,
                     bool *check)
{
    struct option *opts;
    const char *config = NULL;
    char err[400];
    s_ctx_t c;
    size_t i;
    int ch, rc = PROTO_SETTINGS_ERROR;

    memset(&c, 0, sizeof(c));
    c.ps = ps;
    c.obj = obj;
    c.layer = calloc(ps->n ? ps->n : 1, 1);
    opts = calloc(ps->n + 5, sizeof(*opts));
    if (!c.layer || !opts)
        goto out_free;
    for (i = 0; i < ps->n; i++) {
        opts[i].name = ps->tab[i].name;
        opts[i].has_arg = ps->tab[i].metavar ? required_argument : no_argument;
        opts[i].val = (int)i;
    }
    opts[i++] = (struct option){"config", required_argument, NULL, S_CONFIG};
    opts[i++] = (struct option){"check-config", no_argument, NULL, S_CHECK};
    opts[i++] = (struct option){"help", no_argument, NULL, S_HELP};
    opts[i++] = (struct option){"verbose", no_argument, NULL, S_VERBOSE};
    *verbose = 0;
    *check = false;

    /* First pass: only --config, --help and the usage errors; the file and
     * the environment go under the flags, so they are applied first. */
    opterr = 0;
    optind = 0; /* 0: glibc re-initialises, so parsing twice works */
    while ((ch = getopt_long(argc, argv, "v", opts, NULL)) != -1) {
        if (ch == S_CONFIG) {
            config = optarg;
        } else if (ch == S_HELP) {
            s_usage(ps, stdout);
            rc = PROTO_SETTINGS_HELP;
            goto out_free;
        } else if (ch == '?' || ch == ':') {
            fprintf(stderr, "%s: unknown option or missing value: %s\n", ps->prog,
                    argv[optind - 1]);
            s_usage(ps, stderr);
            goto out_free;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", ps->prog, argv[optind]);
        goto out_free;
    }
    if (config && s_load_file(&c, config))
        goto out_free;
    if (s_load_env(&c))
        goto out_free;
    optind = 0;
    while ((ch = getopt_long(argc, argv, "v", opts, NULL)) != -1) {
        if (ch == S_VERBOSE || ch == 'v') {
            (*verbose)++;
        } else if (ch == S_CHECK) {
            *check = true;
        } else if (ch >= 0 && (size_t)ch < ps->n) {
            const proto_setting_t *s = &ps->tab[ch];

            if (s_apply(&c, s, S_LAYER_FLAG, s->metavar ? optarg : "true", err, sizeof(err))) {
                fprintf(stderr, "%s: --%s: %s\n", ps->prog, s->name, err);
                goto out_free;
            }
        }
    }
    rc = PROTO_SETTINGS_RUN;
out_free:
    free(opts);
    free(c.layer);
    return rc;
}

void
proto_settings_print(const proto_settings_t *ps, const void *obj, FILE *f)
{
    size_t i;

    fprintf(f, "[%s]\n", ps->section);
    for (i = 0; i < ps->n; i++)
        ps->tab[i].show(obj, &ps->tab[i], f);
}
