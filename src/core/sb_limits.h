/* The protocol's fixed limits, in one place for the server, the store and
 * the SDKs: the sizes of ids, tags, queries and other fields that every
 * side checks the same way. Limits a server configures (frame and body
 * sizes, page sizes, rates) are not here: WELCOME announces those.
 * docs/protocol.md lists both. */
#ifndef SB_LIMITS_H
#define SB_LIMITS_H

/* A user, device, desk, skill group or agent id: 1..64 bytes of UTF-8. A
 * buffer that holds one is SB_ID_BYTES_MAX + 1 bytes. */
#define SB_ID_BYTES_MAX 64
/* The client_msg_id of a SEND: exactly 16 (random) bytes. */
#define SB_CLIENT_MSG_ID_BYTES 16
/* A conversation's or a message's tag: 1..32 bytes; at most 32 per target,
 * and per TAG request added and removed. */
#define SB_TAG_BYTES_MAX 32
#define SB_TAGS_MAX 32
/* A search query: 1..256 bytes. */
#define SB_QUERY_BYTES_MAX 256
/* A CONV_LIST cursor (the next_cursor of a page): at most 63 bytes. */
#define SB_LIST_CURSOR_BYTES_MAX 63
/* A TRANSFER's note for the receiving agent: at most 1,024 bytes. */
#define SB_NOTE_BYTES_MAX 1024
/* A conversation's title. */
#define SB_TITLE_BYTES_MAX 256
/* Members of one conversation. */
#define SB_MEMBERS_MAX 64
/* Quick replies under a robot message, and the bytes of each one's title
 * or payload. */
#define SB_QUICK_MAX 8
#define SB_QUICK_BYTES_MAX 256
/* Cursors in one SYNC request. */
#define SB_SYNC_CURSORS_MAX 10000
/* The quoted part of a message that a quote carries. */
#define SB_QUOTE_BYTES 200
/* A token (a JWT) and its issuer or each audience. */
#define SB_TOKEN_BYTES_MAX 4096
#define SB_TOKEN_ISS_BYTES_MAX 255
/* The locale of a user or a message ("zh-CN"). */
#define SB_LOCALE_BYTES_MAX 15
/* An upload's id: 16 random bytes as 32 lowercase hex digits; a buffer
 * that holds one is SB_MEDIA_ID_LEN + 1 bytes. */
#define SB_MEDIA_ID_LEN 32
/* An upload's file name (UTF-8, no control characters or slashes) and
 * its type as the server found it ("image/jpeg"). */
#define SB_MEDIA_NAME_BYTES_MAX 255
#define SB_MEDIA_MIME_BYTES_MAX 127
/* Ids in one MEDIA_URL request. */
#define SB_MEDIA_URL_IDS_MAX 64
/* An image's width or height, in pixels. */
#define SB_MEDIA_SIDE_MAX 32768
/* A customer's rating of a conversation (CSAT): 1..5, and its optional
 * comment. */
#define SB_CSAT_RATING_MAX 5
#define SB_CSAT_COMMENT_BYTES_MAX 1000
/* A contact (what the service side knows of a customer): a name, an
 * email, and attributes, each a key of 1..64 bytes of [A-Za-z0-9_.-] and
 * a value of at most 512 bytes, at most 32 of them. */
#define SB_CONTACT_NAME_BYTES_MAX 128
#define SB_CONTACT_EMAIL_BYTES_MAX 254
#define SB_CONTACT_ATTRS_MAX 32
#define SB_CONTACT_KEY_BYTES_MAX 64
#define SB_CONTACT_VALUE_BYTES_MAX 512
/* The customer's conversations a contact's answer lists. */
#define SB_CONTACT_CONVS_MAX 20
/* Teammates one note mentions (more "@ids" are left as text). */
#define SB_NOTE_MENTIONS_MAX 8

#endif
