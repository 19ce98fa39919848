/* Message catalogs (en, zh-CN) and a tiny {n} template renderer. */
#include "sb_i18n.h"

#include <string.h>

typedef struct entry {
    const char *key, *en, *zh;
} entry;

static const entry CATALOG[] = {
    {"conv.queued", "You are number {0} in the queue.",
     "\xe6\x82\xa8\xe5\xbd\x93\xe5\x89\x8d\xe6\x8e\x92\xe5\x9c\xa8\xe7\xac\xac"
     " {0} \xe4\xbd\x8d\xe3\x80\x82"},
    {"conv.assigned", "{0} has joined the conversation.",
     "\xe5\xae\xa2\xe6\x9c\x8d {0} \xe5\xb7\xb2\xe6\x8e\xa5\xe5\x85\xa5\xe4\xbc"
     "\x9a\xe8\xaf\x9d\xe3\x80\x82"},
    {"conv.transferred", "The conversation was transferred to {0}.",
     "\xe4\xbc\x9a\xe8\xaf\x9d\xe5\xb7\xb2\xe8\xbd\xac\xe6\x8e\xa5\xe7\xbb\x99"
     " {0}\xe3\x80\x82"},
    {"conv.closed", "The conversation was closed by {0}.",
     "\xe4\xbc\x9a\xe8\xaf\x9d\xe5\xb7\xb2\xe7\x94\xb1 {0} \xe7\xbb\x93\xe6\x9d"
     "\x9f\xe3\x80\x82"},
    {"conv.reopened", "The conversation was reopened.",
     "\xe4\xbc\x9a\xe8\xaf\x9d\xe5\xb7\xb2\xe9\x87\x8d\xe6\x96\xb0\xe6\x89\x93"
     "\xe5\xbc\x80\xe3\x80\x82"},
    {"conv.handoff", "Connecting you to a person...",
     "\xe6\xad\xa3\xe5\x9c\xa8\xe4\xb8\xba\xe6\x82\xa8\xe8\xbd\xac\xe6\x8e\xa5"
     "\xe4\xba\xba\xe5\xb7\xa5\xe5\xae\xa2\xe6\x9c\x8d\xe2\x80\xa6"},
    {"conv.requeued", "The conversation went back to the {0} queue.",
     "\xe4\xbc\x9a\xe8\xaf\x9d\xe5\xb7\xb2\xe8\xbd\xac\xe5\x9b\x9e"
     " {0} \xe9\x98\x9f\xe5\x88\x97\xe3\x80\x82"},
    {"msg.recalled", "{0} recalled a message.",
     "{0} \xe6\x92\xa4\xe5\x9b\x9e\xe4\xba\x86\xe4\xb8\x80\xe6\x9d\xa1\xe6\xb6"
     "\x88\xe6\x81\xaf\xe3\x80\x82"},
    {"msg.tagged", "{0} changed the tags of a message.",
     "{0} "
     "\xe4\xbf\xae\xe6\x94\xb9\xe4\xba\x86\xe4\xb8\x80\xe6\x9d\xa1\xe6\xb6\x88"
     "\xe6\x81\xaf\xe7\x9a\x84\xe6\xa0\x87\xe7\xad\xbe\xe3\x80\x82"},
    {"conv.tagged", "{0} changed the tags of the conversation.",
     "{0} "
     "\xe4\xbf\xae\xe6\x94\xb9\xe4\xba\x86\xe4\xbc\x9a\xe8\xaf\x9d\xe7\x9a\x84"
     "\xe6\xa0\x87\xe7\xad\xbe\xe3\x80\x82"},
    {"bot.human", "Talk to a person", "\xe8\xbd\xac\xe4\xba\xba\xe5\xb7\xa5"},
};

static const entry *find(const char *key)
{
    for (size_t i = 0; i < sizeof CATALOG / sizeof *CATALOG; i++)
        if (strcmp(CATALOG[i].key, key) == 0) return &CATALOG[i];
    return NULL;
}

static void put(char *out, size_t cap, size_t *n, const char *s, size_t len)
{
    if (cap == 0) return;
    size_t room = cap - 1 - *n;
    if (len > room) {
        /* Cut on a UTF-8 boundary. */
        len = room;
        while (len > 0 && (s[len] & 0xC0) == 0x80)
            len--;
    }
    memcpy(out + *n, s, len);
    *n += len;
}

size_t sb_i18n_render(const char *locale, const char *key, char *const *args,
                      size_t n_args, char *out, size_t cap)
{
    const entry *e = find(key);
    const char *t = key;
    if (e) t = (locale && strncmp(locale, "zh", 2) == 0) ? e->zh : e->en;
    size_t n = 0;
    for (const char *p = t; *p;) {
        if (p[0] == '{' && p[1] >= '0' && p[1] <= '9' && p[2] == '}') {
            size_t i = (size_t)(p[1] - '0');
            if (i < n_args && args[i])
                put(out, cap, &n, args[i], strlen(args[i]));
            p += 3;
        } else {
            const char *q = strchr(p + 1, '{');
            size_t len = q ? (size_t)(q - p) : strlen(p);
            put(out, cap, &n, p, len);
            p += len;
        }
    }
    if (cap) out[n] = '\0';
    return n;
}
