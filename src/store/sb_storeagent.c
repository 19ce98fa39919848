/* The store's front for the agent side (sb_store.h, "the agent side"):
 * a service conversation's notes conversation, opened and joined, and
 * contacts, checked and merged here; the backends only find, make, read
 * and write rows. */
#include "sb_store_int.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sb_error.h"
#include "sb_utf8.h"

static bool id_ok(const char *id)
{
    return id && id[0] && strnlen(id, SB_ID_BYTES_MAX + 1) <= SB_ID_BYTES_MAX;
}

/* ---- notes -----------------------------------------------------------------
 */

static bool member_as(const Sbp__Conversation *c, const char *user_id,
                      Sbp__Role role)
{
    for (size_t i = 0; i < c->n_members; i++)
        if (strcmp(c->members[i]->user_id, user_id) == 0)
            return c->members[i]->role == role;
    return false;
}

int sb_store_notes_open(sb_store *s, uint64_t conv_id, bool create,
                        const char *const *user_ids, const Sbp__Role *roles,
                        size_t n, int64_t now_ms, Sbp__Conversation **out,
                        bool *changed)
{
    assert(s && out && changed && s->ops->in_write(s));
    assert(n == 0 || (user_ids && roles));
    *out = NULL;
    *changed = false;
    if (n > SB_MEMBERS_MAX) return SB_E_TOO_LARGE;
    /* The service side only: a customer or a bot never reads notes. */
    for (size_t i = 0; i < n; i++)
        if (!id_ok(user_ids[i]) || (roles[i] != SBP__ROLE__ROLE_AGENT &&
                                    roles[i] != SBP__ROLE__ROLE_ADMIN))
            return SB_E_INVALID;
    Sbp__Conversation *parent = NULL;
    int rc = s->ops->conv_get(s, conv_id, &parent);
    if (rc) return rc;
    char desk[SB_ID_BYTES_MAX + 1] = "";
    bool service = parent->kind == SBP__CONV_KIND__CONV_SERVICE;
    if (service && strlen(parent->desk) <= SB_ID_BYTES_MAX)
        strcpy(desk, parent->desk);
    sbp__conversation__free_unpacked(parent, NULL);
    if (!service) return SB_E_INVALID;
    uint64_t id;
    if ((rc = s->ops->notes_find(s, conv_id, &id))) return rc;
    if (id == 0) {
        if (!create) return SB_E_NOT_FOUND;
        if ((rc = s->ops->notes_create(s, conv_id, desk, now_ms, &id)))
            return rc;
        *changed = true;
    }
    Sbp__Conversation *c = NULL;
    if ((rc = s->ops->conv_get(s, id, &c))) return rc;
    bool joined = false;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (member_as(c, user_ids[i], roles[i])) continue;
        rc = s->ops->member_put(s, id, user_ids[i], roles[i], now_ms);
        joined = true;
    }
    if (rc == 0 && joined) {
        *changed = true;
        sbp__conversation__free_unpacked(c, NULL);
        c = NULL;
        rc = s->ops->conv_get(s, id, &c);
    }
    if (rc) {
        if (c) sbp__conversation__free_unpacked(c, NULL);
        return rc;
    }
    *out = c;
    return 0;
}

/* ---- contacts --------------------------------------------------------------
 */

/* A text field of at most max bytes of UTF-8 without control characters:
 * 0, SB_E_TOO_LARGE or SB_E_INVALID. */
static int field_check(const char *t, size_t max)
{
    if (!t) return 0;
    size_t n = strnlen(t, max + 1);
    if (n > max) return SB_E_TOO_LARGE;
    if (!sb_utf8_valid(t, n)) return SB_E_INVALID;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)t[i] < 0x20 || t[i] == 0x7f) return SB_E_INVALID;
    return 0;
}

/* An email address as far as a contact needs one: something@something,
 * no spaces. */
static int email_check(const char *e)
{
    int rc = field_check(e, SB_CONTACT_EMAIL_BYTES_MAX);
    if (rc || !e || !e[0]) return rc;
    const char *at = strchr(e, '@');
    if (!at || at == e || !at[1] || strchr(at + 1, '@') || strchr(e, ' '))
        return SB_E_INVALID;
    return 0;
}

/* An attribute's key: 1..SB_CONTACT_KEY_BYTES_MAX of [A-Za-z0-9_.-]. */
static int key_check(const char *k)
{
    size_t n = k ? strnlen(k, SB_CONTACT_KEY_BYTES_MAX + 1) : 0;
    if (n == 0) return SB_E_INVALID;
    if (n > SB_CONTACT_KEY_BYTES_MAX) return SB_E_TOO_LARGE;
    for (size_t i = 0; i < n; i++) {
        char ch = k[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == '-'))
            return SB_E_INVALID;
    }
    return 0;
}

static int change_check(const sb_store_contact_change *ch)
{
    if (ch->n_attrs > SB_CONTACT_ATTRS_MAX) return SB_E_TOO_LARGE;
    if (ch->n_attrs && !ch->attrs) return SB_E_INVALID;
    if (ch->by && ch->by[0] && !id_ok(ch->by)) return SB_E_INVALID;
    int rc = field_check(ch->name, SB_CONTACT_NAME_BYTES_MAX);
    if (rc == 0) rc = email_check(ch->email);
    for (size_t i = 0; rc == 0 && i < ch->n_attrs; i++) {
        const Sbp__ContactAttr *a = ch->attrs[i];
        if (!a) return SB_E_INVALID;
        rc = key_check(a->key);
        if (rc == 0) rc = field_check(a->value, SB_CONTACT_VALUE_BYTES_MAX);
    }
    return rc;
}

/* Replaces *dst (a protobuf-c string: freed unless it is the empty one)
 * with a copy of v. */
static int str_set(char **dst, const char *v)
{
    char *p = strdup(v);
    if (!p) return -ENOMEM;
    if (*dst && *dst != protobuf_c_empty_string) free(*dst);
    *dst = p;
    return 0;
}

static void attr_free(Sbp__ContactAttr *a)
{
    sbp__contact_attr__free_unpacked(a, NULL);
}

/* Sets (or, with an empty value, removes) attribute key of c. */
static int attr_put(Sbp__Contact *c, const Sbp__ContactAttr *in)
{
    const char *value = in->value ? in->value : "";
    for (size_t i = 0; i < c->n_attributes; i++) {
        Sbp__ContactAttr *a = c->attributes[i];
        if (strcmp(a->key, in->key) != 0) continue;
        if (!value[0]) {
            attr_free(a);
            memmove(&c->attributes[i], &c->attributes[i + 1],
                    (c->n_attributes - i - 1) * sizeof *c->attributes);
            c->n_attributes--;
            return 0;
        }
        return str_set(&a->value, value);
    }
    if (!value[0]) return 0;
    Sbp__ContactAttr **v =
        realloc(c->attributes, (c->n_attributes + 1) * sizeof *v);
    if (!v) return -ENOMEM;
    c->attributes = v;
    Sbp__ContactAttr *a = malloc(sizeof *a);
    if (!a) return -ENOMEM;
    sbp__contact_attr__init(a);
    if (!(a->key = strdup(in->key)) || !(a->value = strdup(value))) {
        attr_free(a);
        return -ENOMEM;
    }
    c->attributes[c->n_attributes++] = a;
    return 0;
}

static int attr_cmp(const void *x, const void *y)
{
    const Sbp__ContactAttr *a = *(Sbp__ContactAttr *const *)x;
    const Sbp__ContactAttr *b = *(Sbp__ContactAttr *const *)y;
    return strcmp(a->key, b->key);
}

int sb_store_contact_get(sb_store *s, const char *user_id, Sbp__Contact **out)
{
    assert(s && out);
    *out = NULL;
    if (!id_ok(user_id)) return SB_E_INVALID;
    return s->ops->contact_get(s, user_id, out);
}

int sb_store_contact_put(sb_store *s, const char *user_id,
                         const sb_store_contact_change *ch, int64_t now_ms,
                         Sbp__Contact **out)
{
    assert(s && ch && s->ops->in_write(s));
    if (out) *out = NULL;
    if (!id_ok(user_id)) return SB_E_INVALID;
    int rc = change_check(ch);
    if (rc) return rc;
    /* An agent's or an admin's id never becomes a contact: a contact is
     * what a customer is known by. */
    Sbp__Role role;
    rc = s->ops->user_role(s, user_id, &role);
    if (rc == 0 && role != SBP__ROLE__ROLE_CUSTOMER &&
        role != SBP__ROLE__ROLE_UNSPECIFIED)
        return SB_E_FORBIDDEN;
    if (rc && rc != SB_E_NOT_FOUND) return rc;
    Sbp__Contact *c = NULL;
    rc = s->ops->contact_get(s, user_id, &c);
    if (rc == SB_E_NOT_FOUND) {
        rc = -ENOMEM;
        if (!(c = malloc(sizeof *c))) return rc;
        sbp__contact__init(c);
        rc = str_set(&c->user_id, user_id);
    }
    if (rc) goto out;
    if (ch->clear_name) rc = str_set(&c->name, "");
    if (rc == 0 && ch->clear_email) rc = str_set(&c->email, "");
    if (rc == 0 && ch->name && ch->name[0]) rc = str_set(&c->name, ch->name);
    if (rc == 0 && ch->email && ch->email[0])
        rc = str_set(&c->email, ch->email);
    for (size_t i = 0; rc == 0 && i < ch->n_attrs; i++)
        rc = attr_put(c, ch->attrs[i]);
    if (rc == 0 && c->n_attributes > SB_CONTACT_ATTRS_MAX) rc = SB_E_TOO_LARGE;
    if (rc == 0) rc = str_set(&c->updated_by, ch->by ? ch->by : "");
    if (rc) goto out;
    if (c->n_attributes > 1)
        qsort(c->attributes, c->n_attributes, sizeof *c->attributes, attr_cmp);
    c->verified = c->verified || ch->verified;
    c->updated_ts = now_ms;
    if ((rc = s->ops->contact_write(s, c))) goto out;
    if (out) {
        *out = c;
        c = NULL;
    }
out:
    if (c) sbp__contact__free_unpacked(c, NULL);
    return rc;
}

int sb_store_customer_convs(sb_store *s, const char *user_id, uint32_t limit,
                            Sbp__Conversation ***out, size_t *n)
{
    assert(s && out && n);
    *out = NULL;
    *n = 0;
    if (!id_ok(user_id)) return SB_E_INVALID;
    if (limit == 0 || limit > SB_CONTACT_CONVS_MAX)
        limit = SB_CONTACT_CONVS_MAX;
    uint64_t ids[SB_CONTACT_CONVS_MAX];
    size_t k = 0;
    int rc = s->ops->customer_convs(s, user_id, limit, ids, &k);
    if (rc || k == 0) return rc;
    Sbp__Conversation **list = calloc(k, sizeof *list);
    if (!list) return -ENOMEM;
    size_t got = 0;
    for (size_t i = 0; i < k; i++) {
        rc = s->ops->conv_get(s, ids[i], &list[got]);
        if (rc == SB_E_NOT_FOUND) continue; /* gone since: left out */
        if (rc) break;
        got++;
    }
    if (rc && rc != SB_E_NOT_FOUND) {
        for (size_t i = 0; i < got; i++)
            sbp__conversation__free_unpacked(list[i], NULL);
        free(list);
        return rc;
    }
    *out = list;
    *n = got;
    return 0;
}
