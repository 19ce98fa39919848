/* The admin ops that read or change the store for the REST API and the
 * admins' tools beyond the frames: "conv-get" (one conversation by id,
 * with its members and routing fields), "user-export" (a user's data:
 * the conversations the user is a member of and their messages) and
 * "user-erase" (sb_store_user_erase: the bodies and parts of the user's
 * messages, device cursors, pending webhook events and contact, answered
 * with what was removed and what was kept), and "contact-identify" (the
 * contact the site's page gives for a signed identity, which POST
 * /api/identify checked: {"user", "name", "email", "attributes"}, kept
 * verified). Answers are JSON documents through sb_gw_admin_text. Loop
 * thread only. */
#ifndef SB_DATAOPS_H
#define SB_DATAOPS_H

#include <stdint.h>

#include "sb_gateway.h"
#include "sb_storeq.h"

#define SB_DATAOPS_EXPORT_MSGS_MAX 20000 /* messages in one export */

typedef struct sb_dataops sb_dataops;

/* What erasure does beyond the store's rows, for modules that keep a
 * user's data elsewhere (attachments' bytes): called on the loop once
 * the store's part is committed, with what it erased; it returns a JSON
 * value (a new reference, or NULL) that the answer reports under
 * "attachments". NULL: none. */
typedef void *(*sb_dataops_erase_hook)(void *ud, const char *user_id,
                                       const sb_store_erased *erased);

/* The ops over storeq (outliving them). Returns 0 or -ENOMEM. */
int sb_dataops_new(sb_storeq *storeq, sb_dataops **out);
void sb_dataops_set_gw(sb_dataops *d, sb_gw *gw);
/* Sets the erasure hook of another module (NULL: none). */
void sb_dataops_set_erase_hook(sb_dataops *d, sb_dataops_erase_hook hook,
                               void *ud);
/* An admin's op; SB_E_INVALID (answering nothing) for an op not of these. */
int sb_dataops_admin(sb_dataops *d, uint64_t conn_id, uint32_t rid,
                     const char *op, const char *body);
/* After the store's threads stopped (no completion left). Accepts NULL. */
void sb_dataops_free(sb_dataops *d);

#endif
