/* libFuzzer target: the sensitive-word filter's list compiler, normaliser
 * and matcher (sb_filter).
 *
 * The input is split at its first NUL: the part before is compiled as a
 * word list; the part after (or the whole input when there is no NUL) is
 * scanned, by that list when it compiled and by a fixed filter of three
 * categories, and normalised. Checks: no memory error; a verdict is
 * consistent (no match: PASS, nothing else set; a match: a policy of one
 * of the matched categories; masked text only for MASK, never longer than
 * the text, NUL-terminated); the normaliser returns the same length
 * whatever the output room and writes a NUL-terminated prefix of the full
 * result. */
#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sb_filter.h"

static sb_filter *fixed;

static const char BLOCK_LIST[] =
    "policy: block\nbadword\n|ass|\n\xe5\x9d\x8f\xe8\x9b\x8b\n";
static const char MASK_LIST[] =
    "# comment\npolicy: mask\nspam\nfree "
    "money\n\xef\xbd\x93\xef\xbd\x83\xef\xbd\x81\xef\xbd\x8d\n";
static const char REVIEW_LIST[] = "policy: review\nrefund\ncaf\xc3\xa9\n";

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    sb_filter_list l[3] = {
        {"abuse", NULL, BLOCK_LIST, sizeof BLOCK_LIST - 1},
        {"spam", NULL, MASK_LIST, sizeof MASK_LIST - 1},
        {"watch", NULL, REVIEW_LIST, sizeof REVIEW_LIST - 1},
    };
    char err[SB_FILTER_ERR_BYTES];
    if (sb_filter_compile(l, 3, &fixed, err, sizeof err) != 0) abort();
    return 0;
}

static void scan(const sb_filter *f, const char *t, size_t n)
{
    sb_filter_verdict v;
    int rc = sb_filter_scan(f, t, n, &v);
    assert(rc == 0 || rc == -ENOMEM);
    assert(v.policy <= SB_FILTER_BLOCK);
    if (v.matches == 0) {
        assert(v.policy == SB_FILTER_PASS && v.policies == 0 &&
               v.categories == 0);
    } else {
        assert(v.policy != SB_FILTER_PASS);
        assert(v.policies & (1u << v.policy));
        assert(v.categories != 0);
        assert(v.categories >> sb_filter_categories(f) == 0);
    }
    if (v.policy == SB_FILTER_MASK && rc == 0) {
        assert(v.masked != NULL);
        assert(v.masked_len <= n);
        assert(v.masked[v.masked_len] == '\0');
    } else {
        assert(v.masked == NULL);
    }
    sb_filter_verdict_clear(&v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    size_t text_len = size;
    const uint8_t *nul = memchr(data, '\0', size);
    if (nul) {
        sb_filter_list l = {"fuzz", NULL, (const char *)data,
                            (size_t)(nul - data)};
        sb_filter *f = NULL;
        char err[SB_FILTER_ERR_BYTES];
        int rc = sb_filter_compile(&l, 1, &f, err, sizeof err);
        assert((rc == 0) == (f != NULL));
        text = (const char *)nul + 1;
        text_len = size - (size_t)(nul - data) - 1;
        if (f) {
            assert(sb_filter_categories(f) == 1);
            scan(f, text, text_len);
            sb_filter_release(f);
        } else {
            assert(memchr(err, '\0', sizeof err) != NULL);
        }
    }
    scan(fixed, text, text_len);

    char full[1024], part[16];
    memset(part, 'X', sizeof part); /* bytes left unwritten show */
    size_t n = sb_filter_normalize(text, text_len, full, sizeof full);
    assert(sb_filter_normalize(text, text_len, part, sizeof part) == n);
    size_t in_part = strnlen(part, sizeof part);
    assert(in_part < sizeof part && in_part <= n);
    assert(memcmp(part, full, in_part) == 0);
    return 0;
}
