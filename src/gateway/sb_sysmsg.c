/* Messages the server writes (sb_sysmsg.h). */
#include "sb_sysmsg.h"

#include <stdlib.h>
#include <string.h>

#include "sb_i18n.h"

Sbp__Message *sb_sysmsg_new(uint64_t conv_id, const char *sender,
                            Sbp__MsgType type, const char *body,
                            const char *lang)
{
    Sbp__Message *m = malloc(sizeof *m);
    if (!m) return NULL;
    sbp__message__init(m);
    m->conv_id = conv_id;
    m->type = type;
    m->sender = strdup(sender);
    m->body = strdup(body ? body : "");
    m->lang = strdup(lang ? lang : "");
    if (!m->sender || !m->body || !m->lang) {
        sbp__message__free_unpacked(m, NULL);
        return NULL;
    }
    return m;
}

Sbp__Message *sb_sysmsg_event(uint64_t conv_id, const char *key, const char *a0,
                              const char *a1)
{
    const char *a[2] = {a0, a1};
    return sb_sysmsg_event_n(conv_id, key, a, a0 ? (a1 ? 2 : 1) : 0);
}

bool sb_sysmsg_staff_only(const char *key)
{
    return strcmp(key, "msg.tagged") == 0 || strcmp(key, "conv.tagged") == 0;
}

Sbp__Message *sb_sysmsg_event_n(uint64_t conv_id, const char *key,
                                const char *const *args, size_t n)
{
    Sbp__Message *m =
        sb_sysmsg_new(conv_id, "system", SBP__MSG_TYPE__MSG_EVENT, "", "");
    Sbp__Event *e = malloc(sizeof *e);
    if (!m || !e) goto oom;
    sbp__event__init(e);
    m->event = e;
    e->key = strdup(key);
    e->args = calloc(n ? n : 1, sizeof *e->args);
    if (!e->key || !e->args) goto oom;
    for (size_t i = 0; i < n; i++) {
        if (!(e->args[i] = strdup(args[i]))) goto oom;
        e->n_args++;
    }
    /* The stored body is the English text, for tools that read the store. */
    char text[512];
    sb_i18n_render("en", key, e->args, e->n_args, text, sizeof text);
    free(m->body);
    if (!(m->body = strdup(text))) goto oom;
    return m;
oom:
    if (m)
        sbp__message__free_unpacked(m, NULL);
    else
        free(e);
    return NULL;
}

Sbp__Message *sb_sysmsg_robot(uint64_t conv_id, const char *text,
                              char *const *quick, size_t n_quick,
                              const char *lang)
{
    Sbp__Message *m =
        sb_sysmsg_new(conv_id, "bot", SBP__MSG_TYPE__MSG_ROBOT, text, lang);
    if (!m || n_quick == 0) return m;
    m->quick_replies = calloc(n_quick, sizeof *m->quick_replies);
    if (!m->quick_replies) goto oom;
    for (size_t i = 0; i < n_quick; i++) {
        Sbp__QuickReply *q = malloc(sizeof *q);
        if (!q) goto oom;
        sbp__quick_reply__init(q);
        m->quick_replies[m->n_quick_replies++] = q;
        if (!(q->title = strdup(quick[i])) || !(q->payload = strdup(quick[i])))
            goto oom;
    }
    return m;
oom:
    sbp__message__free_unpacked(m, NULL);
    return NULL;
}

void sb_sysmsg_render(Sbp__Message *const *msgs, size_t n, const char *locale)
{
    char text[1024];
    for (size_t i = 0; i < n; i++) {
        Sbp__Message *m = msgs[i];
        if (!m->event || !m->event->key[0]) continue;
        sb_i18n_render(locale, m->event->key, m->event->args, m->event->n_args,
                       text, sizeof text);
        char *body = strdup(text);
        if (!body) continue;
        if (m->body != protobuf_c_empty_string) free(m->body);
        m->body = body;
    }
}
