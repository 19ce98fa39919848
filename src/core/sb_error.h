/* Error codes shared by every module.
 *
 * Fallible functions return 0 on success or a negative code: -errno for a
 * failed system call, or SB_E(code) for a protocol-level failure whose code
 * is one of the wire's ErrorCode values. sb_error_code() turns any of them
 * into the code an ERROR frame carries; that is the one dispatcher. */
#ifndef SB_ERROR_H
#define SB_ERROR_H

#include "switchboard.pb-c.h"

#define SB_EBASE 1000
#define SB_E(code) (-(SB_EBASE + (int)(code)))

#define SB_E_BAD_FRAME SB_E(SBP__ERROR_CODE__ERR_BAD_FRAME)
#define SB_E_UNKNOWN_TYPE SB_E(SBP__ERROR_CODE__ERR_UNKNOWN_TYPE)
#define SB_E_UNAUTHENTICATED SB_E(SBP__ERROR_CODE__ERR_UNAUTHENTICATED)
#define SB_E_BAD_TOKEN SB_E(SBP__ERROR_CODE__ERR_BAD_TOKEN)
#define SB_E_TOKEN_EXPIRED SB_E(SBP__ERROR_CODE__ERR_TOKEN_EXPIRED)
#define SB_E_FORBIDDEN SB_E(SBP__ERROR_CODE__ERR_FORBIDDEN)
#define SB_E_NOT_FOUND SB_E(SBP__ERROR_CODE__ERR_NOT_FOUND)
#define SB_E_TOO_LARGE SB_E(SBP__ERROR_CODE__ERR_TOO_LARGE)
#define SB_E_BAD_UTF8 SB_E(SBP__ERROR_CODE__ERR_BAD_UTF8)
#define SB_E_INVALID SB_E(SBP__ERROR_CODE__ERR_INVALID)
#define SB_E_RATE_LIMITED SB_E(SBP__ERROR_CODE__ERR_RATE_LIMITED)
#define SB_E_TOO_MANY_PENDING SB_E(SBP__ERROR_CODE__ERR_TOO_MANY_PENDING)
#define SB_E_STORE SB_E(SBP__ERROR_CODE__ERR_STORE)
#define SB_E_UNAVAILABLE SB_E(SBP__ERROR_CODE__ERR_UNAVAILABLE)
#define SB_E_INTERNAL SB_E(SBP__ERROR_CODE__ERR_INTERNAL)
#define SB_E_ALREADY SB_E(SBP__ERROR_CODE__ERR_ALREADY)
#define SB_E_BLOCKED SB_E(SBP__ERROR_CODE__ERR_BLOCKED)
#define SB_E_STATE SB_E(SBP__ERROR_CODE__ERR_STATE)
#define SB_E_TOO_LATE SB_E(SBP__ERROR_CODE__ERR_TOO_LATE)

/* Maps a negative return code to the wire ErrorCode. -errno values map to
 * ERR_INTERNAL, except -ENOMEM/-ENOSPC/-EIO which map to ERR_STORE. */
Sbp__ErrorCode sb_error_code(int rc);

/* A short English text for rc; a static string, never NULL. */
const char *sb_strerror(int rc);

#endif
