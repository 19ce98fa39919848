/* The store's uploads, on SQLite (a temporary folder) or on the
 * PostgreSQL of pgtest.h: records, who may see an upload (its uploader;
 * members once a message carries it; no one once that message is
 * recalled; admins), messages that name an upload (only the uploader's,
 * only in its conversation, filled from the record), blobs stored and
 * read back whole at every offset, twice the same bytes stored once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "pgtest.h"
#include "sb_error.h"
#include "sb_store.h"

#define NOW 1800000000000LL

typedef struct fixture {
    char dir[64];
    char where[256];
    sb_store *s;
    uint64_t conv, other; /* alice+bob, alice+cai */
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/sbmedia.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    if (pgtest_url())
        pgtest_db_new(f->where, sizeof f->where);
    else
        snprintf(f->where, sizeof f->where, "%s/sb.db", f->dir);
    assert_int_equal(sb_store_open(f->where, SB_DURABILITY_FSYNC, &f->s), 0);
    const char *a[] = {"alice", "bob"}, *b[] = {"alice", "cai"};
    Sbp__Role roles[] = {SBP__ROLE__ROLE_CUSTOMER, SBP__ROLE__ROLE_AGENT};
    Sbp__Conversation *c = NULL;
    assert_int_equal(sb_store_begin(f->s), 0);
    assert_int_equal(sb_store_conv_create(f->s, SBP__CONV_KIND__CONV_DIRECT,
                                          "t", a, roles, 2, NOW, &c),
                     0);
    f->conv = c->conv_id;
    sbp__conversation__free_unpacked(c, NULL);
    assert_int_equal(sb_store_conv_create(f->s, SBP__CONV_KIND__CONV_DIRECT,
                                          "u", b, roles, 2, NOW, &c),
                     0);
    f->other = c->conv_id;
    sbp__conversation__free_unpacked(c, NULL);
    assert_int_equal(sb_store_commit(f->s), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    sb_store_close(f->s);
    if (pgtest_url()) pgtest_db_drop(f->where);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static void record(sb_store_media *m, const char *id, uint64_t conv,
                   const char *owner, const char *mime, uint32_t w, uint32_t h)
{
    memset(m, 0, sizeof *m);
    snprintf(m->id, sizeof m->id, "%s", id);
    memset(m->sha256, id[0], sizeof m->sha256);
    m->conv_id = conv;
    snprintf(m->owner, sizeof m->owner, "%s", owner);
    snprintf(m->name, sizeof m->name, "%s", "photo.jpg");
    snprintf(m->mime, sizeof m->mime, "%s", mime);
    m->size = 1234;
    m->width = w;
    m->height = h;
    m->created_ts = NOW;
}

static int put(sb_store *s, const sb_store_media *m)
{
    int rc = sb_store_begin(s);
    if (rc == 0) rc = sb_store_media_put(s, m);
    if (rc == 0) rc = sb_store_commit(s);
    if (rc) sb_store_rollback(s);
    return rc;
}

static const char ID_A[] = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
static const char ID_B[] = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
static const char ID_C[] = "cccccccccccccccccccccccccccccccc";

/* A message naming upload id; fills *seq (0 when refused) and returns
 * the append's rc. The message's media after the append goes to *md. */
static int send_media(sb_store *s, uint64_t conv, const char *sender,
                      Sbp__MsgType type, const char *id, uint8_t tag,
                      uint64_t *seq, Sbp__Media **md, bool *dup)
{
    uint8_t cmid[16];
    memset(cmid, tag, sizeof cmid);
    Sbp__Message *m = calloc(1, sizeof *m);
    sbp__message__init(m);
    m->conv_id = conv;
    m->sender = strdup(sender);
    m->sender_device = strdup("d1");
    m->client_msg_id.data = malloc(16);
    memcpy(m->client_msg_id.data, cmid, 16);
    m->client_msg_id.len = 16;
    m->type = type;
    m->lang = strdup("en");
    m->media = calloc(1, sizeof *m->media);
    sbp__media__init(m->media);
    m->media->id = strdup(id);
    m->media->url = strdup("https://evil.example/x.png");
    m->media->size = 1;
    m->media->mime = strdup("image/svg+xml");
    bool d = false;
    int rc = sb_store_begin(s);
    if (rc == 0) rc = sb_store_append(s, m, NOW, &d);
    if (rc == 0) rc = sb_store_commit(s);
    if (rc) sb_store_rollback(s);
    *seq = rc ? 0 : m->seq;
    if (dup) *dup = d;
    if (md) {
        *md = m->media;
        m->media = NULL;
    }
    sbp__message__free_unpacked(m, NULL);
    return rc;
}

static bool sees(sb_store *s, const char *id, const char *user, bool all)
{
    sb_store_media m;
    int rc = sb_store_media_get(s, id, user, all, &m);
    assert_true(rc == 0 || rc == SB_E_NOT_FOUND);
    if (rc == 0) assert_string_equal(m.id, id);
    return rc == 0;
}

static void test_records_and_access(void **state)
{
    fixture *f = *state;
    sb_store_media m;
    record(&m, ID_A, f->conv, "alice", "image/jpeg", 640, 480);
    assert_int_equal(put(f->s, &m), 0);
    /* Refused records: no such conversation, a bad name or type. */
    sb_store_media bad;
    record(&bad, ID_B, 999999, "alice", "image/jpeg", 1, 1);
    assert_int_equal(put(f->s, &bad), SB_E_NOT_FOUND);
    record(&bad, ID_B, f->conv, "alice", "image/jpeg", 1, 1);
    snprintf(bad.name, sizeof bad.name, "../etc/passwd");
    assert_int_equal(put(f->s, &bad), SB_E_INVALID);
    record(&bad, ID_B, f->conv, "alice", "text/html; charset=x", 0, 0);
    assert_int_equal(put(f->s, &bad), SB_E_INVALID);
    record(&bad, "not-an-id", f->conv, "alice", "image/png", 1, 1);
    assert_int_equal(put(f->s, &bad), SB_E_INVALID);

    /* Before a message carries it: the uploader only. */
    assert_true(sees(f->s, ID_A, "alice", false));
    assert_false(sees(f->s, ID_A, "bob", false));
    assert_false(sees(f->s, ID_A, "cai", false));
    assert_false(sees(f->s, ID_A, "root", true));
    assert_false(sees(f->s, ID_B, "alice", false)); /* never stored */
    assert_false(sees(f->s, "zz", "alice", true));  /* malformed */
    sb_store_media got;
    assert_int_equal(sb_store_media_get(f->s, ID_A, "alice", false, &got), 0);
    assert_memory_equal(got.sha256, m.sha256, SB_SHA256_BYTES);
    assert_int_equal(got.conv_id, f->conv);
    assert_string_equal(got.owner, "alice");
    assert_string_equal(got.name, "photo.jpg");
    assert_string_equal(got.mime, "image/jpeg");
    assert_int_equal(got.size, 1234);
    assert_int_equal(got.width, 640);
    assert_int_equal(got.height, 480);
    assert_int_equal(got.created_ts, NOW);

    /* Sent: the members see it, and admins; cai (not a member) never. */
    uint64_t seq;
    Sbp__Media *md = NULL;
    assert_int_equal(send_media(f->s, f->conv, "alice",
                                SBP__MSG_TYPE__MSG_IMAGE, ID_A, 1, &seq, &md,
                                NULL),
                     0);
    assert_true(seq > 0);
    /* The message's media is the store's, not the sender's word. */
    assert_string_equal(md->id, ID_A);
    assert_string_equal(md->url, "/media/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    assert_string_equal(md->mime, "image/jpeg");
    assert_string_equal(md->name, "photo.jpg");
    assert_int_equal(md->size, 1234);
    assert_int_equal(md->width, 640);
    assert_int_equal(md->height, 480);
    sbp__media__free_unpacked(md, NULL);
    assert_true(sees(f->s, ID_A, "bob", false));
    assert_true(sees(f->s, ID_A, "root", true));
    assert_false(sees(f->s, ID_A, "cai", false));

    /* Read back as stored. */
    Sbp__Message *r = NULL;
    assert_int_equal(sb_store_msg_get(f->s, f->conv, seq, &r), 0);
    assert_non_null(r->media);
    assert_string_equal(r->media->id, ID_A);
    assert_int_equal(r->media->width, 640);
    sbp__message__free_unpacked(r, NULL);

    /* The same SEND again is the same message, nothing more. */
    bool dup = false;
    uint64_t seq2;
    assert_int_equal(send_media(f->s, f->conv, "alice",
                                SBP__MSG_TYPE__MSG_IMAGE, ID_A, 1, &seq2, NULL,
                                &dup),
                     0);
    assert_true(dup);
    assert_int_equal(seq2, seq);

    /* Recalled: the members lose it (the only message carrying it). */
    assert_int_equal(sb_store_begin(f->s), 0);
    assert_int_equal(sb_store_recall(f->s, f->conv, seq), 0);
    assert_int_equal(sb_store_commit(f->s), 0);
    assert_false(sees(f->s, ID_A, "bob", false));
    assert_false(sees(f->s, ID_A, "root", true));
    assert_true(sees(f->s, ID_A, "alice", false));
    /* Sent again in a new message: seen again. */
    assert_int_equal(send_media(f->s, f->conv, "alice",
                                SBP__MSG_TYPE__MSG_IMAGE, ID_A, 2, &seq2, NULL,
                                &dup),
                     0);
    assert_false(dup);
    assert_true(seq2 > seq);
    assert_true(sees(f->s, ID_A, "bob", false));
}

static void test_refused_messages(void **state)
{
    fixture *f = *state;
    sb_store_media m;
    record(&m, ID_A, f->conv, "alice", "image/png", 10, 20);
    assert_int_equal(put(f->s, &m), 0);
    record(&m, ID_C, f->conv, "alice", "application/pdf", 0, 0);
    assert_int_equal(put(f->s, &m), 0);
    uint64_t before = 0, seq;
    Sbp__Conversation *c = NULL;
    assert_int_equal(sb_store_conv_get(f->s, f->conv, &c), 0);
    before = c->last_seq;
    sbp__conversation__free_unpacked(c, NULL);

    /* Someone else's upload, even a member's: as if it did not exist. */
    assert_int_equal(send_media(f->s, f->conv, "bob", SBP__MSG_TYPE__MSG_IMAGE,
                                ID_A, 3, &seq, NULL, NULL),
                     SB_E_NOT_FOUND);
    /* Another conversation. */
    assert_int_equal(send_media(f->s, f->other, "alice",
                                SBP__MSG_TYPE__MSG_IMAGE, ID_A, 4, &seq, NULL,
                                NULL),
                     SB_E_NOT_FOUND);
    /* An upload never made, a malformed id. */
    assert_int_equal(send_media(f->s, f->conv, "alice",
                                SBP__MSG_TYPE__MSG_IMAGE, ID_B, 5, &seq, NULL,
                                NULL),
                     SB_E_NOT_FOUND);
    assert_int_equal(send_media(f->s, f->conv, "alice", SBP__MSG_TYPE__MSG_FILE,
                                "ABC", 6, &seq, NULL, NULL),
                     SB_E_INVALID);
    /* A PDF is a file, not an image. */
    assert_int_equal(send_media(f->s, f->conv, "alice",
                                SBP__MSG_TYPE__MSG_IMAGE, ID_C, 7, &seq, NULL,
                                NULL),
                     SB_E_INVALID);
    assert_int_equal(sb_store_conv_get(f->s, f->conv, &c), 0);
    assert_int_equal(c->last_seq, before); /* nothing stored */
    sbp__conversation__free_unpacked(c, NULL);
    assert_false(sees(f->s, ID_A, "bob", false));
    /* The PDF as a file is fine. */
    assert_int_equal(send_media(f->s, f->conv, "alice", SBP__MSG_TYPE__MSG_FILE,
                                ID_C, 8, &seq, NULL, NULL),
                     0);
    assert_int_equal(seq, before + 1);
    assert_true(sees(f->s, ID_C, "bob", false));
}

/* Many appends at once (the writer's path): the media ones are checked
 * and carried each on its own. */
static void test_append_many(void **state)
{
    fixture *f = *state;
    sb_store_media m;
    record(&m, ID_A, f->conv, "alice", "image/gif", 3, 4);
    assert_int_equal(put(f->s, &m), 0);
    Sbp__Message msgs[3];
    Sbp__Media media[3];
    uint8_t cmid[3][16];
    sb_store_append_item items[3];
    const char *ids[] = {ID_A, ID_B, ""};
    for (int i = 0; i < 3; i++) {
        sbp__message__init(&msgs[i]);
        sbp__media__init(&media[i]);
        memset(cmid[i], 0x40 + i, 16);
        msgs[i].conv_id = f->conv;
        msgs[i].sender = "alice";
        msgs[i].sender_device = "d";
        msgs[i].client_msg_id.data = cmid[i];
        msgs[i].client_msg_id.len = 16;
        msgs[i].type =
            i < 2 ? SBP__MSG_TYPE__MSG_IMAGE : SBP__MSG_TYPE__MSG_TEXT;
        msgs[i].body = "x";
        msgs[i].lang = "en";
        if (i < 2) {
            media[i].id = strdup(ids[i]);
            msgs[i].media = &media[i];
        }
        items[i] = (sb_store_append_item){.msg = &msgs[i], .now_ms = NOW};
    }
    assert_int_equal(sb_store_begin(f->s), 0);
    assert_int_equal(sb_store_append_many(f->s, items, 3), 0);
    assert_int_equal(sb_store_commit(f->s), 0);
    assert_int_equal(items[0].rc, 0);
    assert_int_equal(items[1].rc, SB_E_NOT_FOUND);
    assert_int_equal(items[2].rc, 0);
    assert_int_equal(msgs[2].seq, msgs[0].seq + 1);
    assert_string_equal(media[0].mime, "image/gif");
    assert_int_equal(media[0].height, 4);
    assert_true(sees(f->s, ID_A, "bob", false));
    for (int i = 0; i < 2; i++) {
        free(media[i].id);
        if (media[i].url != protobuf_c_empty_string) free(media[i].url);
        if (media[i].name != protobuf_c_empty_string) free(media[i].name);
        if (media[i].mime != protobuf_c_empty_string) free(media[i].mime);
    }
}

/* A file of n bytes whose byte i is (i * 7 + i / 251) & 255. */
static void file_make(const char *path, size_t n)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    for (size_t i = 0; i < n; i++)
        fputc((int)((i * 7 + i / 251) & 255), fp);
    assert_int_equal(fclose(fp), 0);
}

static void read_all(sb_store *s, const uint8_t *sha, size_t n, size_t step)
{
    uint8_t *buf = malloc(step);
    size_t off = 0;
    while (off < n) {
        size_t got = 0;
        assert_int_equal(sb_store_blob_read(s, sha, off, buf, step, &got), 0);
        assert_true(got > 0 && got <= step);
        for (size_t i = 0; i < got; i++)
            assert_int_equal(buf[i], ((off + i) * 7 + (off + i) / 251) & 255);
        off += got;
    }
    assert_int_equal(off, n);
    size_t got = 7;
    assert_int_equal(sb_store_blob_read(s, sha, n, buf, step, &got), 0);
    assert_int_equal(got, 0);
    assert_int_equal(sb_store_blob_read(s, sha, n + 100, buf, step, &got), 0);
    assert_int_equal(got, 0);
    free(buf);
}

static void test_blobs(void **state)
{
    fixture *f = *state;
    /* Over two of PostgreSQL's chunks, not a multiple of anything. */
    const size_t n = (5u << 19) + 12345;
    char path[128];
    snprintf(path, sizeof path, "%s/up1", f->dir);
    file_make(path, n);
    uint8_t sha[SB_SHA256_BYTES];
    memset(sha, 0x5a, sizeof sha);
    uint8_t buf[16];
    size_t got;
    assert_int_equal(sb_store_blob_read(f->s, sha, 0, buf, sizeof buf, &got),
                     SB_E_NOT_FOUND);
    assert_int_equal(sb_store_blob_put(f->s, sha, path, n), 0);
    struct stat st;
    assert_int_not_equal(stat(path, &st), 0); /* moved or removed */
    read_all(f->s, sha, n, 65536);
    read_all(f->s, sha, n, 1000003); /* across chunk boundaries */
    /* The same bytes again: stored once, the second file let go. */
    file_make(path, n);
    assert_int_equal(sb_store_blob_put(f->s, sha, path, n), 0);
    assert_int_not_equal(stat(path, &st), 0);
    read_all(f->s, sha, n, 300000);
    if (!pgtest_url()) {
        /* Under the data folder, by its hash. */
        char file[256];
        int k = snprintf(file, sizeof file, "%s/media/5a/", f->dir);
        for (int i = 0; i < SB_SHA256_BYTES; i++, k += 2)
            memcpy(file + k, "5a", 3);
        assert_int_equal(stat(file, &st), 0);
        assert_int_equal(st.st_size, (off_t)n);
    } else {
        assert_int_equal(pgtest_int(f->where, "SELECT count(*) FROM blobs"), 1);
        assert_int_equal(
            pgtest_int(f->where, "SELECT count(*) FROM blob_chunks"), 3);
    }
    /* A file shorter than said is not stored (PostgreSQL checks; SQLite
     * moves files whole and the caller says the size it wrote). */
    if (pgtest_url()) {
        uint8_t sha2[SB_SHA256_BYTES];
        memset(sha2, 0x77, sizeof sha2);
        file_make(path, 100);
        assert_int_equal(sb_store_blob_put(f->s, sha2, path, 200), SB_E_STORE);
        assert_int_equal(stat(path, &st), 0); /* still the caller's */
        assert_int_equal(
            sb_store_blob_read(f->s, sha2, 0, buf, sizeof buf, &got),
            SB_E_NOT_FOUND);
        unlink(path);
    }
}

/* An SQLite store in memory has nowhere to keep blobs. */
static void test_memory_has_no_blobs(void **state)
{
    (void)state;
    if (pgtest_url()) skip();
    sb_store *s = NULL;
    assert_int_equal(sb_store_open(":memory:", SB_DURABILITY_OS, &s), 0);
    uint8_t sha[SB_SHA256_BYTES] = {1}, buf[4];
    size_t got;
    assert_int_equal(sb_store_blob_put(s, sha, "/nonexistent", 1), -ENOTSUP);
    assert_int_equal(sb_store_blob_read(s, sha, 0, buf, sizeof buf, &got),
                     -ENOTSUP);
    sb_store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_records_and_access, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_refused_messages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_many, setup, teardown),
        cmocka_unit_test_setup_teardown(test_blobs, setup, teardown),
        cmocka_unit_test(test_memory_has_no_blobs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
