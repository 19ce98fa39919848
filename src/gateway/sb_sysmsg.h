/* Messages the server writes: events, stored as a catalog key and its
 * arguments and rendered in each recipient's locale (sb_i18n), the bot's
 * robot messages with quick replies, and system texts. Pure: no I/O. */
#ifndef SB_SYSMSG_H
#define SB_SYSMSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "switchboard.pb-c.h"

/* A message of type from sender with body in lang (all copied). NULL when
 * out of memory. The caller frees it (sbp__message__free_unpacked). */
Sbp__Message *sb_sysmsg_new(uint64_t conv_id, const char *sender,
                            Sbp__MsgType type, const char *body,
                            const char *lang);
/* An event of conv_id: catalog key with up to two arguments (NULL: none),
 * from "system", with the English text as its stored body. NULL when out
 * of memory. */
Sbp__Message *sb_sysmsg_event(uint64_t conv_id, const char *key, const char *a0,
                              const char *a1);
/* The same with n arguments (copied), for events with more than two. */
Sbp__Message *sb_sysmsg_event_n(uint64_t conv_id, const char *key,
                                const char *const *args, size_t n);
/* Whether events of key are the service side's own (tag changes): a
 * customer is told only that one happened, not by whom or what. */
bool sb_sysmsg_staff_only(const char *key);
/* A robot message of "bot" with text and n_quick quick replies (each both
 * title and payload). NULL when out of memory. */
Sbp__Message *sb_sysmsg_robot(uint64_t conv_id, const char *text,
                              char *const *quick, size_t n_quick,
                              const char *lang);
/* Renders the bodies of the events among msgs for locale, in place; a
 * message whose text cannot be allocated keeps its stored body. */
void sb_sysmsg_render(Sbp__Message *const *msgs, size_t n, const char *locale);

#endif
