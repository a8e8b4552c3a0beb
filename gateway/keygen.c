/*
 * keygen.c - wsgate-keygen: a CURVE key pair for the gateway <-> worker
 * links, in the format --curve-secret-file and --curve-allow-file take.
 *
 *   wsgate-keygen               prints "public: <z85>" and "secret: <z85>"
 *   wsgate-keygen --out PREFIX  writes PREFIX.key (the secret, mode 0600)
 *                               and PREFIX.pub (the public key), one line each
 *
 * A tool of its own, so it includes <zmq.h> for zmq_curve_keypair.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <zmq.h>

static int
s_write(const char *path, const char *line, mode_t mode)
{
    size_t len = strlen(line);
    int fd, rc = -1;

    /* O_EXCL: never overwrite a key in place by accident. */
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) {
        fprintf(stderr, "wsgate-keygen: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (write(fd, line, len) == (ssize_t)len && write(fd, "\n", 1) == 1)
        rc = 0;
    else
        fprintf(stderr, "wsgate-keygen: %s: write failed\n", path);
    if (close(fd) != 0)
        rc = -1;
    return rc;
}

int
main(int argc, char **argv)
{
    char public[41], secret[41], path[4096];
    const char *prefix = NULL;

    if (argc == 3 && !strcmp(argv[1], "--out")) {
        prefix = argv[2];
    } else if (argc != 1) {
        fprintf(argc == 2 && !strcmp(argv[1], "--help") ? stdout : stderr,
                "usage: wsgate-keygen [--out PREFIX]\n"
                "  prints a CURVE key pair (public: / secret: lines), or writes\n"
                "  PREFIX.key (secret, mode 0600) and PREFIX.pub (public)\n");
        return argc == 2 && !strcmp(argv[1], "--help") ? 0 : 2;
    }
    if (zmq_curve_keypair(public, secret) != 0) {
        fprintf(stderr, "wsgate-keygen: %s\n", zmq_strerror(zmq_errno()));
        return 1;
    }
    if (!prefix) {
        printf("public: %s\nsecret: %s\n", public, secret);
        return 0;
    }
    snprintf(path, sizeof(path), "%s.key", prefix);
    if (s_write(path, secret, 0600))
        return 1;
    snprintf(path, sizeof(path), "%s.pub", prefix);
    if (s_write(path, public, 0644))
        return 1;
    printf("public: %s\n", public);
    return 0;
}
