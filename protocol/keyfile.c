#include "keyfile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char s_z85[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                            ".-:+=^!/*?&<>()[]{}@%$#";

bool
proto_z85_key_valid(const char *s, size_t len)
{
    size_t i;

    if (len != PROTO_Z85_KEY_LEN)
        return false;
    for (i = 0; i < len; i++)
        if (!s[i] || !strchr(s_z85, s[i]))
            return false;
    return true;
}

/* The line without surrounding blanks and its comment. '#' is a Z85
 * character, so a comment starts at a '#' that begins the line or follows
 * a blank (keys hold no blanks). */
static char *
s_trim(char *line)
{
    char *end;

    for (end = line; *end; end++) {
        if (*end == '#' && (end == line || end[-1] == ' ' || end[-1] == '\t')) {
            *end = '\0';
            break;
        }
    }
    while (*line == ' ' || *line == '\t')
        line++;
    end = line + strlen(line);
    while (end > line && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\n' || end[-1] == '\r'))
        *--end = '\0';
    return line;
}

int
proto_key_read(const char *path, char key[PROTO_Z85_KEY_LEN + 1], bool *world_readable, char *err,
               size_t errsz)
{
    char line[256];
    struct stat st;
    bool found = false;
    FILE *f;
    int rc = -1;

    f = fopen(path, "r");
    if (!f) {
        snprintf(err, errsz, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (world_readable)
        *world_readable = fstat(fileno(f), &st) == 0 && (st.st_mode & S_IROTH);
    while (fgets(line, sizeof(line), f)) {
        char *k = s_trim(line);

        if (!*k)
            continue;
        /* keygen's "secret: <z85>" line is accepted as it is printed. */
        if (!strncmp(k, "secret:", 7) || !strncmp(k, "public:", 7)) {
            k += 7;
            while (*k == ' ' || *k == '\t')
                k++;
        }
        if (found || !proto_z85_key_valid(k, strlen(k))) {
            snprintf(err, errsz, "%s: expected one Z85 key (40 characters) on one line", path);
            goto out_close;
        }
        memcpy(key, k, PROTO_Z85_KEY_LEN + 1);
        found = true;
    }
    if (!found) {
        snprintf(err, errsz, "%s: no key in the file", path);
        goto out_close;
    }
    rc = 0;
out_close:
    fclose(f);
    return rc;
}

int
proto_key_allow_load(const char *path, char (**keys_p)[PROTO_Z85_KEY_LEN + 1], size_t *n_p,
                     char *err, size_t errsz)
{
    char(*keys)[PROTO_Z85_KEY_LEN + 1] = NULL;
    size_t n = 0, cap = 0;
    unsigned lineno = 0;
    char line[512];
    FILE *f;

    f = fopen(path, "r");
    if (!f) {
        snprintf(err, errsz, "%s: %s", path, strerror(errno));
        return -1;
    }
    while (fgets(line, sizeof(line), f)) {
        char *k;

        lineno++;
        k = s_trim(line);
        if (!*k)
            continue;
        if (!proto_z85_key_valid(k, strlen(k))) {
            snprintf(err, errsz, "%s:%u: expected a Z85 public key (40 characters)", path, lineno);
            goto out_free;
        }
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            char(*nk)[PROTO_Z85_KEY_LEN + 1] = realloc(keys, ncap * sizeof(*keys));

            if (!nk) {
                snprintf(err, errsz, "%s: out of memory", path);
                goto out_free;
            }
            keys = nk;
            cap = ncap;
        }
        memcpy(keys[n++], k, PROTO_Z85_KEY_LEN + 1);
    }
    fclose(f);
    *keys_p = keys;
    *n_p = n;
    return 0;

out_free:
    free(keys);
    fclose(f);
    return -1;
}
