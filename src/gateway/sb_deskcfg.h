/* The desk configuration as a document: the JSON text the store keeps and
 * admins edit while the server runs. Fine-grained edits (an agent, a
 * skill group, a canned reply, a greeting or out-of-hours text, the
 * external bot) are made on the JSON tree; every resulting document must
 * pass sb_desk_parse before it counts, so a refused edit changes nothing.
 * Pure: no I/O, no clock. */
#ifndef SB_DESKCFG_H
#define SB_DESKCFG_H

#include <stddef.h>

#include "sb_desk.h"

#define SB_DESKCFG_MSG_BYTES 512 /* room for a result or a refusal */
#define SB_DESKCFG_HASH_HEX 64   /* SHA-256 in hex */
#define SB_DESKCFG_CAPACITY_MAX 1000

/* Applies an admin's op to doc, the document in force (len bytes; NULL
 * when there is none, and then only "set" can apply). op is one of
 *   "set"         arg: the whole new document
 *   "agent-set"   {"id", "groups": [...], "capacity": N}: adds the agent
 *                 (groups required) or changes the fields given
 *   "agent-rm"    {"id"}
 *   "group-add"   {"name", "desk"}: a skill group for the desk
 *   "group-rm"    {"name", "desk"}: also taken from the agents' groups
 *   "canned-add"  {"key", "title", "text", "desk"}: adds or replaces
 *   "canned-rm"   {"key", "desk"}
 *   "text"        {"kind": "greeting" | "out_of_hours" | "fallback",
 *                  "lang", "text", "desk"}: sets the text for the
 *                 language ("" removes it)
 *   "bot"         {"user", "desk"}: the desk's external bot ("": none)
 *   "widget"      {"color", "desk"} and/or {"kind": "title" |
 *                 "reply_time" | "greeting", "lang", "text", "desk"}: the
 *                 chat widget's brand colour ("" removes it) or a text of
 *                 it for the language ("" removes it)
 *   "avatar"      {"id", "url"}: an agent's picture ("" removes it)
 *   "hours"       {"group", "hours": {"tz", "week", "holidays"}}: the
 *                 group's business hours (sb_hours.h); "hours" null or
 *                 missing removes them
 *   "identity"    {"secret", "desk"}: the key the site signs its
 *                 customers' ids with (16..128 bytes; "" removes it)
 * where "desk" is optional (the first desk) and arg is JSON of arg_len
 * bytes. On success returns 0 with *out_doc the new document (malloc'd,
 * NUL-terminated, *out_len bytes; the caller frees), *out_desk parsed
 * from it (the caller frees), and msg saying what was done. Otherwise
 * returns SB_E_INVALID (a malformed argument, an unknown op, or a result
 * sb_desk_parse refuses), SB_E_NOT_FOUND (no such desk, agent, group or
 * canned reply), SB_E_TOO_LARGE (over SB_DESK_FILE_BYTES_MAX) or -ENOMEM,
 * with msg saying why, and nothing is returned. */
int sb_deskcfg_apply(const char *doc, size_t len, const char *op,
                     const char *arg, size_t arg_len, char **out_doc,
                     size_t *out_len, sb_desk **out_desk, char *msg,
                     size_t msg_len);

/* The SHA-256 of len bytes of text in lowercase hex, NUL-terminated: how
 * the server recognises a desk file it imported before. */
void sb_deskcfg_hash(const void *text, size_t len,
                     char out[SB_DESKCFG_HASH_HEX + 1]);

#endif
