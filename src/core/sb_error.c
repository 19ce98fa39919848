/* Maps return codes to wire error codes and texts. */
#include "sb_error.h"

#include <errno.h>
#include <string.h>

Sbp__ErrorCode sb_error_code(int rc)
{
    if (rc >= 0) return SBP__ERROR_CODE__ERR_NONE;
    if (rc <= -SB_EBASE && rc > -(SB_EBASE + 1000))
        return (Sbp__ErrorCode)(-rc - SB_EBASE);
    switch (-rc) {
    case ENOSPC:
    case EIO:
    case ENOMEM:
    case EBUSY:
        return SBP__ERROR_CODE__ERR_STORE;
    default:
        return SBP__ERROR_CODE__ERR_INTERNAL;
    }
}

const char *sb_strerror(int rc)
{
    if (rc >= 0) return "ok";
    if (rc > -SB_EBASE) return strerror(-rc);
    switch (sb_error_code(rc)) {
    case SBP__ERROR_CODE__ERR_BAD_FRAME:
        return "malformed frame";
    case SBP__ERROR_CODE__ERR_UNKNOWN_TYPE:
        return "unknown frame type";
    case SBP__ERROR_CODE__ERR_UNAUTHENTICATED:
        return "HELLO required first";
    case SBP__ERROR_CODE__ERR_BAD_TOKEN:
        return "invalid token";
    case SBP__ERROR_CODE__ERR_TOKEN_EXPIRED:
        return "token expired or not yet valid";
    case SBP__ERROR_CODE__ERR_FORBIDDEN:
        return "not allowed";
    case SBP__ERROR_CODE__ERR_NOT_FOUND:
        return "not found";
    case SBP__ERROR_CODE__ERR_TOO_LARGE:
        return "too large";
    case SBP__ERROR_CODE__ERR_BAD_UTF8:
        return "invalid UTF-8";
    case SBP__ERROR_CODE__ERR_INVALID:
        return "invalid field";
    case SBP__ERROR_CODE__ERR_RATE_LIMITED:
        return "rate limited";
    case SBP__ERROR_CODE__ERR_TOO_MANY_PENDING:
        return "too many pending sends";
    case SBP__ERROR_CODE__ERR_STORE:
        return "store failure, retry later";
    case SBP__ERROR_CODE__ERR_UNAVAILABLE:
        return "server unavailable";
    case SBP__ERROR_CODE__ERR_ALREADY:
        return "session already authenticated";
    case SBP__ERROR_CODE__ERR_BLOCKED:
        return "message blocked by content policy";
    case SBP__ERROR_CODE__ERR_STATE:
        return "not possible in the conversation's state";
    case SBP__ERROR_CODE__ERR_TOO_LATE:
        return "too late to recall";
    default:
        return "internal error";
    }
}
