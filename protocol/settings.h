/*
 * settings.h - one table of settings for a daemon, read from (lowest to
 * highest precedence) the defaults already in the object, an INI file
 * (--config FILE, section [<section>]), environment variables
 * (<PREFIX><NAME>, upper case, dashes to underscores) and flags
 * (--<name>). Every setting is written once, in the table; the flag
 * parser, the file and the environment all go through its set function.
 *
 * A repeatable setting (reset != NULL) collects its values within one
 * layer; a higher layer that gives it replaces the lower layer's list. In
 * the environment a repeatable setting takes a comma-separated list.
 *
 * Only this file includes <ini.h> (inih), with workers/jwt.c for its key
 * file.
 */
#ifndef WSGATE_PROTO_SETTINGS_H
#define WSGATE_PROTO_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct proto_setting proto_setting_t;

/* Stores val into obj. 0; -1 with the problem in err (without the
 * setting's name: the caller says where the value came from). */
typedef int (*proto_setting_set_fn)(void *obj, const proto_setting_t *s, const char *val, char *err,
                                    size_t errsz);
/* Prints the setting as "name = value" lines (none when unset). */
typedef void (*proto_setting_show_fn)(const void *obj, const proto_setting_t *s, FILE *f);
/* Clears a repeatable setting's list. */
typedef void (*proto_setting_reset_fn)(void *obj, const proto_setting_t *s);

struct proto_setting {
    const char *name;    /* flag without dashes, file key, env suffix */
    const char *metavar; /* NULL: a switch (flag takes no value) */
    const char *help;    /* one line for --help */
    proto_setting_set_fn set;
    proto_setting_show_fn show;
    proto_setting_reset_fn reset; /* NULL: not repeatable */
    size_t off;                   /* where in obj (the set function's business) */
    size_t off2;
    size_t size;       /* of the field at off: numbers 4 or 8 bytes; strings: buffer */
    uint64_t min, max; /* numbers */
};

typedef struct {
    const char *prog;          /* "wsgate", for messages */
    const char *section;       /* the file's section for this daemon */
    const char *other_section; /* a section this daemon ignores (NULL: none) */
    const char *env_prefix;    /* "WSGATE_" */
    const proto_setting_t *tab;
    size_t n;
} proto_settings_t;

enum {
    PROTO_SETTINGS_RUN = 0,
    PROTO_SETTINGS_HELP = 1,  /* --help printed to stdout */
    PROTO_SETTINGS_ERROR = -1 /* the problem printed to stderr */
};

/* Applies file, environment and flags over obj. *verbose counts -v /
 * --verbose; *check says --check-config was given. */
int proto_settings_parse(const proto_settings_t *ps, void *obj, int argc, char **argv, int *verbose,
                         bool *check);

/* The effective configuration as an INI file. */
void proto_settings_print(const proto_settings_t *ps, const void *obj, FILE *f);

/* Set/show functions for plain fields (size 4 or 8 for numbers). */
int proto_setting_set_num(void *obj, const proto_setting_t *s, const char *val, char *err,
                          size_t errsz);
void proto_setting_show_num(const void *obj, const proto_setting_t *s, FILE *f);
int proto_setting_set_str(void *obj, const proto_setting_t *s, const char *val, char *err,
                          size_t errsz);
void proto_setting_show_str(const void *obj, const proto_setting_t *s, FILE *f);
int proto_setting_set_bool(void *obj, const proto_setting_t *s, const char *val, char *err,
                           size_t errsz);
void proto_setting_show_bool(const void *obj, const proto_setting_t *s, FILE *f);

#endif
