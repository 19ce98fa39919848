/* The configuration file cut into "name value" entries, in place in one
 * copy of the text. */
#include "sb_conf.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* [a-z0-9][a-z0-9-]*: a flag's name without its dashes. */
static bool name_ok(const char *s)
{
    if (!*s || *s == '-') return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
              *s == '-'))
            return false;
    return true;
}

/* Cuts one line (NUL-terminated, no newline) into an entry; false when
 * there is none (blank, comment). */
static bool cut_line(char *s, sb_conf_entry *e)
{
    while (is_blank(*s))
        s++;
    if (*s == '\0' || *s == '#') return false;
    char *end = s + strlen(s);
    while (end > s && is_blank(end[-1]))
        *--end = '\0';
    e->name = s;
    while (*s && !is_blank(*s))
        s++;
    if (*s) {
        *s++ = '\0';
        while (is_blank(*s))
            s++;
    }
    e->value = s;
    return true;
}

int sb_conf_parse(const char *text, size_t len, sb_conf *c, unsigned *line,
                  char *err, size_t elen)
{
    memset(c, 0, sizeof *c);
    *line = 0;
    if (len > SB_CONF_FILE_BYTES_MAX) {
        snprintf(err, elen, "larger than %u bytes", SB_CONF_FILE_BYTES_MAX);
        return -EINVAL;
    }
    if (memchr(text, '\0', len)) {
        snprintf(err, elen, "holds a NUL byte: not a text file");
        return -EINVAL;
    }
    c->text = malloc(len + 1);
    c->entries = calloc(SB_CONF_ENTRIES_MAX, sizeof *c->entries);
    if (!c->text || !c->entries) {
        sb_conf_free(c);
        snprintf(err, elen, "out of memory");
        return -ENOMEM;
    }
    memcpy(c->text, text, len);
    c->text[len] = '\0';
    char *p = c->text;
    int rc = 0;
    for (unsigned n = 1; *p; n++) {
        char *nl = strchr(p, '\n');
        char *next = nl ? nl + 1 : p + strlen(p);
        if (nl) *nl = '\0';
        if (strlen(p) > SB_CONF_LINE_BYTES_MAX) {
            snprintf(err, elen, "longer than %u bytes", SB_CONF_LINE_BYTES_MAX);
            *line = n;
            rc = -EINVAL;
            break;
        }
        sb_conf_entry e = {.line = n};
        if (cut_line(p, &e)) {
            if (!name_ok(e.name)) {
                snprintf(err, elen,
                         "'%.64s' is not an option name "
                         "(lower-case letters, digits and '-', "
                         "no leading dashes)",
                         e.name);
                *line = n;
                rc = -EINVAL;
                break;
            }
            if (c->n == SB_CONF_ENTRIES_MAX) {
                snprintf(err, elen, "more than %u options",
                         SB_CONF_ENTRIES_MAX);
                *line = n;
                rc = -EINVAL;
                break;
            }
            c->entries[c->n++] = e;
        }
        p = next;
    }
    if (rc) sb_conf_free(c);
    return rc;
}

int sb_conf_read(const char *path, sb_conf *c, unsigned *line, char *err,
                 size_t elen)
{
    memset(c, 0, sizeof *c);
    *line = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        snprintf(err, elen, "%s", strerror(e));
        return -e;
    }
    /* One byte more than the bound tells a file over it. */
    char *buf = malloc(SB_CONF_FILE_BYTES_MAX + 1);
    if (!buf) {
        fclose(f);
        snprintf(err, elen, "out of memory");
        return -ENOMEM;
    }
    size_t n = fread(buf, 1, SB_CONF_FILE_BYTES_MAX + 1, f);
    int rc = 0;
    if (ferror(f)) {
        snprintf(err, elen, "cannot read it");
        rc = -EIO;
    }
    fclose(f);
    if (rc == 0) rc = sb_conf_parse(buf, n, c, line, err, elen);
    free(buf);
    return rc;
}

void sb_conf_free(sb_conf *c)
{
    free(c->text);
    free(c->entries);
    memset(c, 0, sizeof *c);
}
