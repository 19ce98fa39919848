/* Static files under --web: target to path, content type, bytes. */
#include "sb_static.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int sb_static_path(const char *root, const char *target, char *full, size_t cap)
{
    char rel[SB_STATIC_TARGET_BYTES_MAX + 1];
    size_t plen = strcspn(target, "?#");
    if (plen == 0 || plen >= sizeof rel || target[0] != '/') return -ENOENT;
    memcpy(rel, target, plen);
    rel[plen] = '\0';
    if (strstr(rel, "..") || strchr(rel, '\\')) return -ENOENT;
    int n;
    if (strcmp(rel, "/") == 0)
        n = snprintf(full, cap, "%s/index.html", root);
    else if (!strchr(rel + 1, '.') && !strchr(rel + 1, '/'))
        n = snprintf(full, cap, "%s%s.html", root, rel); /* /agent */
    else
        n = snprintf(full, cap, "%s%s", root, rel);
    return n < 0 || (size_t)n >= cap ? -ENOENT : 0;
}

const char *sb_static_content_type(const char *path)
{
    static const struct {
        const char *ext, *type;
    } TYPES[] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".json", "application/json"},
        {".png", "image/png"},
        {".svg", "image/svg+xml"},
        {".ico", "image/x-icon"},
        {".txt", "text/plain; charset=utf-8"},
    };
    const char *dot = strrchr(path, '.');
    for (size_t i = 0; dot && i < sizeof TYPES / sizeof TYPES[0]; i++)
        if (strcmp(dot, TYPES[i].ext) == 0) return TYPES[i].type;
    return "application/octet-stream";
}

int sb_static_read(const char *full, char **body, size_t *len)
{
    *body = NULL;
    *len = 0;
    int fd = open(full, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
        st.st_size > (off_t)SB_STATIC_FILE_BYTES_MAX) {
        if (fd >= 0) close(fd);
        return -ENOENT;
    }
    /* Read at once: the web pages are a few hundred KiB. */
    char *buf = malloc((size_t)st.st_size + 1);
    ssize_t got = buf ? read(fd, buf, (size_t)st.st_size) : -1;
    close(fd);
    if (got != (ssize_t)st.st_size) {
        free(buf);
        return -EIO;
    }
    *body = buf;
    *len = (size_t)got;
    return 0;
}
