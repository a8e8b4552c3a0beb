/*
 * keyfile.h - CURVE key files and allow-lists, as text (Z85).
 *
 * A key file holds one Z85 key (40 characters) on one line, as written by
 * wsgate-keygen. An allow-list holds Z85 public keys, one per line; '#'
 * starts a comment, blank lines are ignored. No ZeroMQ here: the callers
 * (the backend link files) hand the text to ZeroMQ.
 */
#ifndef WSGATE_PROTO_KEYFILE_H
#define WSGATE_PROTO_KEYFILE_H

#include <stdbool.h>
#include <stddef.h>

#define PROTO_Z85_KEY_LEN 40

/* True for 40 characters of the Z85 alphabet. */
bool proto_z85_key_valid(const char *s, size_t len);

/* Reads the key file at path into key (41 bytes, NUL-terminated). 0; -1
 * with a message in err. *world_readable (if not NULL) says whether others
 * may read the file (callers warn). */
int proto_key_read(const char *path, char key[PROTO_Z85_KEY_LEN + 1], bool *world_readable,
                   char *err, size_t errsz);

/* Parses an allow-list file. On 0, *keys_p is an owned array of *n_p
 * NUL-terminated keys (free() it; may hold 0 keys). -1 with "path:line:
 * problem" in err. */
int proto_key_allow_load(const char *path, char (**keys_p)[PROTO_Z85_KEY_LEN + 1], size_t *n_p,
                         char *err, size_t errsz);

#endif
