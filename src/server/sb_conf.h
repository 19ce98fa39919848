/* The server's configuration file: one option per line, "name value" (the
 * names of the command-line flags without their dashes; a flag alone, or
 * followed by yes/no), blank lines and lines starting with '#' ignored.
 * This module only cuts the text into entries with their line numbers;
 * what a name means and whether its value is good is the caller's (the
 * option table in main.c). */
#ifndef SB_CONF_H
#define SB_CONF_H

#include <stddef.h>

#define SB_CONF_FILE_BYTES_MAX (1u << 20)
#define SB_CONF_LINE_BYTES_MAX 4096
#define SB_CONF_ENTRIES_MAX 1000

/* One "name value" line; value is "" for a name alone. Both are
 * NUL-terminated and trimmed of surrounding blanks. */
typedef struct sb_conf_entry {
    char *name;
    char *value;
    unsigned line; /* 1-based */
} sb_conf_entry;

/* A file read and cut into entries; owns every string. */
typedef struct sb_conf {
    char *text; /* the file, its lines cut in place */
    sb_conf_entry *entries;
    size_t n;
} sb_conf;

/* Reads and cuts the file at path into *c. Returns 0, or a negative code
 * with err saying why and *line where (0: the whole file): the file
 * cannot be read (-errno), is over SB_CONF_FILE_BYTES_MAX, holds a line
 * over SB_CONF_LINE_BYTES_MAX or more than SB_CONF_ENTRIES_MAX entries, a
 * NUL byte, or a name that is not [a-z0-9][a-z0-9-]* (-EINVAL). *c is empty on
 * failure. */
int sb_conf_read(const char *path, sb_conf *c, unsigned *line, char *err,
                 size_t elen);

/* The same for a text in memory (len bytes, copied). */
int sb_conf_parse(const char *text, size_t len, sb_conf *c, unsigned *line,
                  char *err, size_t elen);

/* Frees what c owns and empties it; accepts an empty one. */
void sb_conf_free(sb_conf *c);

#endif
