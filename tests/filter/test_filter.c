/* The sensitive-word filter: normalisation and every evasion form, each
 * policy's verdict and masked text, false positives, overlapping words,
 * the list format and its errors (file:line), limits, and the reload
 * pattern of an owner that swaps filters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sb_error.h"
#include "sb_filter.h"
#include "sb_utf8.h"

/* A filter of one list per (category, text) pair; fails the test if it
 * does not compile. */
static sb_filter *lists(size_t n, const char *const *cat_text)
{
    sb_filter_list l[8];
    assert_true(n <= 8);
    for (size_t i = 0; i < n; i++)
        l[i] = (sb_filter_list){cat_text[2 * i], NULL, cat_text[2 * i + 1],
                                strlen(cat_text[2 * i + 1])};
    sb_filter *f = NULL;
    char err[SB_FILTER_ERR_BYTES];
    int rc = sb_filter_compile(l, n, &f, err, sizeof err);
    if (rc) fail_msg("compile: %s", err);
    return f;
}

static sb_filter *one(const char *text)
{
    const char *ct[] = {"test", text};
    return lists(1, ct);
}

/* The three demo policies, one category each. */
static sb_filter *three(void)
{
    const char *ct[] = {
        "abuse",   "policy: block\nbadword\n傻瓜\n",
        "profane", "policy: mask\ndarn\n该死\n|ass|\n",
        "spam",    "policy: review\nfree money\n验证码\n",
    };
    return lists(3, ct);
}

static sb_filter_policy verdict(const sb_filter *f, const char *text)
{
    sb_filter_verdict v;
    assert_int_equal(sb_filter_scan(f, text, strlen(text), &v), 0);
    sb_filter_policy p = v.policy;
    sb_filter_verdict_clear(&v);
    return p;
}

/* Every one of the n texts gets policy want. */
static void expect_all(const sb_filter *f, const char *const *texts, size_t n,
                       sb_filter_policy want)
{
    for (size_t i = 0; i < n; i++) {
        sb_filter_policy got = verdict(f, texts[i]);
        if (got != want)
            fail_msg("\"%s\": %s, want %s", texts[i],
                     sb_filter_policy_name(got), sb_filter_policy_name(want));
    }
}
#define EXPECT_ALL(f, texts, want)                                             \
    expect_all(f, texts, sizeof texts / sizeof *texts, want)

/* The masked text of a MASK verdict ("" if the verdict is not MASK). */
static void expect_masked(const sb_filter *f, const char *text,
                          const char *want)
{
    sb_filter_verdict v;
    assert_int_equal(sb_filter_scan(f, text, strlen(text), &v), 0);
    if (v.policy != SB_FILTER_MASK) fail_msg("\"%s\": not masked", text);
    assert_non_null(v.masked);
    assert_string_equal(v.masked, want);
    assert_int_equal(v.masked_len, strlen(want));
    sb_filter_verdict_clear(&v);
}

static void test_plain_and_case(void **state)
{
    (void)state;
    sb_filter *f = one("policy: block\nbadword\n");
    const char *hits[] = {"badword", "this has badword in it", "BADWORD",
                          "BadWord!", "xbadwordx"};
    EXPECT_ALL(f, hits, SB_FILTER_BLOCK);
    assert_int_equal(verdict(f, "a perfectly good sentence"), SB_FILTER_PASS);
    assert_int_equal(verdict(f, ""), SB_FILTER_PASS);
    sb_filter_verdict v;
    assert_int_equal(sb_filter_scan(f, "badword", 7, &v), 0);
    assert_int_equal(v.categories, 1);
    assert_int_equal(v.policies, 1u << SB_FILTER_BLOCK);
    assert_int_equal(v.matches, 1);
    assert_null(v.masked);
    sb_filter_verdict_clear(&v);
    sb_filter_release(f);
}

static void test_fullwidth_and_compat(void **state)
{
    (void)state;
    sb_filter *f = one("policy: block\nbadword\n");
    const char *hits[] = {
        "ｂａｄｗｏｒｄ",      /* full-width */
        "ＢＡＤＷＯＲＤ",      /* full-width capitals */
        "ｂad\xef\xbd\x97ord", /* mixed widths */
        /* 𝐛𝐚𝐝 (mathematical bold) */
        "\xf0\x9d\x90\x9b\xf0\x9d\x90\x9a\xf0\x9d\x90\x9d"
        "word",
        "b\xc3\xa1"
        "dword", /* á: accents are stripped */
        "ba\xcc\x81"
        "dword", /* a + combining acute */
    };
    EXPECT_ALL(f, hits, SB_FILTER_BLOCK);
    sb_filter_release(f);
    /* A list word written in full width matches plain text, and one
     * code point that normalises to several letters matches them. */
    f = one("policy: block\nＳＰＡＭ\nfine\nstrasse\n");
    assert_int_equal(verdict(f, "spam"), SB_FILTER_BLOCK);
    assert_int_equal(verdict(f, "\xef\xac\x81ne"), SB_FILTER_BLOCK); /* ﬁne */
    assert_int_equal(verdict(f, "stra\xc3\x9f"
                                "e"),
                     SB_FILTER_BLOCK); /* ß */
    sb_filter_release(f);
}

static void test_separators_between_letters(void **state)
{
    (void)state;
    sb_filter *f = one("policy: block\nbadword\n");
    const char *hits[] = {
        "b.a.d-w o r d",
        "b a d w o r d",
        "b_a_d_w_o_r_d",
        "b*a*d*w*o*r*d",
        "b\taD\nWoRd",
        "b\xe2\x80\x8b"
        "adword", /* U+200B */
        "b\xe2\x80\x8c"
        "a\xe2\x80\x8d"
        "d\xe2\x81\xa0"
        "w\xef\xbb\xbf"
        "ord",
        "b\xf0\x9f\x98\x80"
        "adword", /* an emoji */
        "b\xef\xbc\x8e"
        "a\xe3\x80\x80"
        "dword", /* ．and U+3000 */
        "b\xc2\xad"
        "adword", /* soft hyphen */
        "b\xe2\x80\x8e"
        "adword", /* LRM */
    };
    EXPECT_ALL(f, hits, SB_FILTER_BLOCK);
    sb_filter_release(f);
}

static void test_chinese(void **state)
{
    (void)state;
    sb_filter *f = one("policy: block\n傻瓜\n");
    const char *hits[] = {"你是傻瓜吗",
                          "傻 瓜",
                          "傻，瓜",
                          "傻　瓜",
                          "傻。瓜！",
                          "傻-_-瓜",
                          "傻\xe2\x80\x8b瓜",      /* zero-width space */
                          "傻\xf0\x9f\x98\x80瓜"}; /* an emoji */
    EXPECT_ALL(f, hits, SB_FILTER_BLOCK);
    /* Another letter between the two is not an evasion. */
    assert_int_equal(verdict(f, "傻子瓜"), SB_FILTER_PASS);
    assert_int_equal(verdict(f, "傻a瓜"), SB_FILTER_PASS);
    assert_int_equal(verdict(f, "傻"), SB_FILTER_PASS);
    sb_filter_release(f);
}

static void test_policies(void **state)
{
    (void)state;
    sb_filter *f = three();
    assert_int_equal(sb_filter_categories(f), 3);
    assert_string_equal(sb_filter_category_name(f, 1), "profane");
    assert_int_equal(sb_filter_category_policy(f, 0), SB_FILTER_BLOCK);
    assert_int_equal(sb_filter_category_policy(f, 1), SB_FILTER_MASK);
    assert_int_equal(sb_filter_category_policy(f, 2), SB_FILTER_REVIEW);

    sb_filter_verdict v;
    const char *t = "free money, darn";
    assert_int_equal(sb_filter_scan(f, t, strlen(t), &v), 0);
    assert_int_equal(v.policy, SB_FILTER_MASK); /* mask beats review */
    assert_int_equal(v.policies, 1u << SB_FILTER_MASK | 1u << SB_FILTER_REVIEW);
    assert_int_equal(v.categories, 1u << 1 | 1u << 2);
    assert_int_equal(v.matches, 2);
    assert_string_equal(v.masked, "free money, ****");
    char names[64];
    assert_string_equal(
        sb_filter_categories_str(f, v.categories, names, sizeof names),
        "profane,spam");
    sb_filter_verdict_clear(&v);
    assert_null(v.masked);

    t = "darn, free money and a badword";
    assert_int_equal(sb_filter_scan(f, t, strlen(t), &v), 0);
    assert_int_equal(v.policy, SB_FILTER_BLOCK); /* block beats all */
    assert_int_equal(v.categories, 7);
    assert_null(v.masked); /* nothing to deliver */
    sb_filter_verdict_clear(&v);

    t = "请把验证码发给我";
    assert_int_equal(sb_filter_scan(f, t, strlen(t), &v), 0);
    assert_int_equal(v.policy, SB_FILTER_REVIEW);
    assert_int_equal(v.categories, 1u << 2);
    assert_null(v.masked); /* review delivers the text as it is */
    sb_filter_verdict_clear(&v);
    sb_filter_release(f);
}

static void test_mask_positions(void **state)
{
    (void)state;
    sb_filter *f = three();
    expect_masked(f, "darn", "****");
    expect_masked(f, "oh darn it", "oh **** it");
    /* Evasion characters inside the span are masked too, one '*' per
     * code point; what is around the span is kept, multibyte or not. */
    expect_masked(f, "我说 d.a-r n 了", "我说 ******* 了");
    expect_masked(f, "ｄａｒｎ！", "****！");
    expect_masked(f,
                  "d\xe2\x80\x8b"
                  "arn",
                  "*****");
    expect_masked(f, "该 死的", "***的");
    expect_masked(f, "该\xe2\x80\x8b死，该死", "***，**");
    expect_masked(f, "darn darn", "**** ****");
    expect_masked(f, "DARN\xf0\x9f\x98\x80", "****\xf0\x9f\x98\x80");
    /* A span starts at the code point its first letter came from, even
     * when that one stands for several letters ("ﬁ" is "fi"). */
    sb_filter_release(f);
    f = one("policy: mask\nine\nfin\n");
    expect_masked(f, "\xef\xac\x81ne!", "***!"); /* ﬁne: "fin", "ine" */
    expect_masked(f, "a \xef\xac\x81n", "a **");
    sb_filter_release(f);
}

static void test_no_false_match(void **state)
{
    (void)state;
    sb_filter *f = one("policy: block\nbadword\n");
    const char *clean[] = {
        "badminton world", "b-a-d-x-w-o-r-d", "badwor",
        "adword",          "bad 1 word",      "bad我word",
    };
    EXPECT_ALL(f, clean, SB_FILTER_PASS);
    sb_filter_release(f);

    /* A word is found inside longer words unless the list says "|...|". */
    f = one("policy: mask\nass\n");
    assert_int_equal(verdict(f, "first class"), SB_FILTER_MASK);
    sb_filter_release(f);
    f = one("policy: mask\n|ass|\n|pre\npost|\n");
    const char *no[] = {"first class",  "assess",   "glass",
                        "grass hopper", "1ass",     "ass2",
                        "spree",        "impostor", "ｃｌａｓｓ"};
    EXPECT_ALL(f, no, SB_FILTER_PASS);
    const char *yes[] = {"ass",    "you ass!", "a.s.s", "ASS",   "我ass",
                         "prefix", "signpost", "(ass)", "ａｓｓ"};
    EXPECT_ALL(f, yes, SB_FILTER_MASK);
    expect_masked(f, "you ass!", "you ***!");
    sb_filter_release(f);
}

static void test_overlapping_words(void **state)
{
    (void)state;
    sb_filter *f = one("policy: mask\nhe\nshe\nhis\nhers\n");
    sb_filter_verdict v;
    assert_int_equal(sb_filter_scan(f, "ushers", 6, &v), 0);
    assert_int_equal(v.matches, 3); /* she, he, hers */
    assert_string_equal(v.masked, "u*****");
    sb_filter_verdict_clear(&v);
    expect_masked(f, "he xx his", "** xx ***");
    /* Ignorables join words across spaces too: "this he" holds "she". */
    expect_masked(f, "this he", "t******");
    sb_filter_release(f);

    /* A mask word inside a block word: the block wins. */
    const char *ct[] = {"a", "policy: mask\nbad\n", "b",
                        "policy: block\nbadword\n"};
    f = lists(2, ct);
    assert_int_equal(verdict(f, "badword"), SB_FILTER_BLOCK);
    expect_masked(f, "bad things", "*** things");
    sb_filter_release(f);

    /* The same word in two categories hits both; repeats count once. */
    const char *ct2[] = {"a", "policy: review\nspam\nSPAM\n", "b",
                         "policy: review\nspam\n"};
    f = lists(2, ct2);
    assert_int_equal(sb_filter_words(f), 2);
    assert_int_equal(sb_filter_scan(f, "spam", 4, &v), 0);
    assert_int_equal(v.categories, 3);
    sb_filter_verdict_clear(&v);
    sb_filter_release(f);
}

static void test_invalid_text(void **state)
{
    (void)state;
    sb_filter *f = three();
    /* Bytes that are not UTF-8 are unknown characters: no crash, no read
     * past the end, and a word broken by one is not matched. */
    const char bad[] = "bad\xffword d\xc3"
                       "arn \xe4\xbd";
    assert_int_equal(verdict(f, bad), SB_FILTER_PASS);
    const char t[] = "darn\xed\xa0\x80";
    sb_filter_verdict v;
    assert_int_equal(sb_filter_scan(f, t, strlen(t), &v), 0);
    assert_string_equal(v.masked, "****\xed\xa0\x80");
    sb_filter_verdict_clear(&v);
    /* Not NUL-terminated: only len bytes are read. */
    assert_int_equal(sb_filter_scan(f, "darnit", 3, &v), 0);
    assert_int_equal(v.policy, SB_FILTER_PASS);
    sb_filter_verdict_clear(&v);
    sb_filter_release(f);
}

static void test_normalize(void **state)
{
    (void)state;
    char out[64];
    const char *t = "Ｈｅｌｌｏ, Wörld! \xef\xac\x81 ß "
                    "傻\xe2\x80\x8b瓜 ①";
    size_t n = sb_filter_normalize(t, strlen(t), out, sizeof out);
    assert_string_equal(out, "helloworldfiss傻瓜1");
    assert_int_equal(n, strlen(out));
    char small[6];
    assert_int_equal(sb_filter_normalize(t, strlen(t), small, sizeof small), n);
    assert_string_equal(small, "hello");
    /* Only whole characters: no room for 傻 means nothing after it. */
    char cut[5];
    t = "ab傻c";
    assert_int_equal(sb_filter_normalize(t, strlen(t), cut, sizeof cut), 6);
    assert_string_equal(cut, "ab");
}

/* ---- list files --------------------------------------------------------- */

typedef struct tmpdir {
    char path[64];
} tmpdir;

static void dir_make(tmpdir *d)
{
    snprintf(d->path, sizeof d->path, "/tmp/sbfilter-test.XXXXXX");
    assert_non_null(mkdtemp(d->path));
}

static void put_file(const tmpdir *d, const char *name, const char *text,
                     size_t n)
{
    char p[128];
    snprintf(p, sizeof p, "%s/%s", d->path, name);
    FILE *fp = fopen(p, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(text, 1, n, fp), n);
    fclose(fp);
}

static void put(const tmpdir *d, const char *name, const char *text)
{
    put_file(d, name, text, strlen(text));
}

static void rm_file(const tmpdir *d, const char *name)
{
    char p[128];
    snprintf(p, sizeof p, "%s/%s", d->path, name);
    unlink(p);
}

static void dir_remove(tmpdir *d, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        rm_file(d, names[i]);
    assert_int_equal(rmdir(d->path), 0);
}

/* Loading d fails with rc and an error that contains want. */
static void expect_refused(const tmpdir *d, int rc, const char *want)
{
    sb_filter *f = (sb_filter *)1;
    char err[SB_FILTER_ERR_BYTES];
    int got = sb_filter_load_dir(d->path, &f, err, sizeof err);
    assert_null(f);
    if (got != rc || !strstr(err, want))
        fail_msg("got %d \"%s\", want %d \"%s\"", got, err, rc, want);
}

static void test_load_dir(void **state)
{
    (void)state;
    tmpdir d;
    dir_make(&d);
    put(&d, "zz.txt",
        "\xef\xbb\xbf# a BOM, comments, CRLF, blank lines\r\n"
        "\r\n  Policy:  review \r\n  free money  \r\n#x\r\n");
    put(&d, "aa.txt", "policy: block\nbadword");
    put(&d, "README.md", "not a list");
    put(&d, ".hidden.txt", "policy: nonsense");
    sb_filter *f = NULL;
    char err[SB_FILTER_ERR_BYTES];
    int rc = sb_filter_load_dir(d.path, &f, err, sizeof err);
    if (rc) fail_msg("load: %s", err);
    assert_int_equal(sb_filter_categories(f), 2);
    assert_string_equal(sb_filter_category_name(f, 0), "aa"); /* sorted */
    assert_string_equal(sb_filter_category_name(f, 1), "zz");
    assert_int_equal(sb_filter_words(f), 2);
    assert_int_equal(verdict(f, "badword"), SB_FILTER_BLOCK);
    assert_int_equal(verdict(f, "FREE MONEY"), SB_FILTER_REVIEW);
    sb_filter_release(f);
    const char *names[] = {"zz.txt", "aa.txt", "README.md", ".hidden.txt"};
    dir_remove(&d, names, 4);
}

static void test_broken_lists(void **state)
{
    (void)state;
    tmpdir d;
    dir_make(&d);
    char want[128];
    put(&d, "good.txt", "policy: block\nbadword\n");

    put(&d, "bad.txt", "policy: mask\nok\n\xc3\x28 broken\n");
    snprintf(want, sizeof want, "%s/bad.txt:3: invalid UTF-8", d.path);
    expect_refused(&d, SB_E_INVALID, want);

    put(&d, "bad.txt", "# x\npolicy: blok\nword\n");
    snprintf(want, sizeof want, "%s/bad.txt:2: unknown policy \"blok\"",
             d.path);
    expect_refused(&d, SB_E_INVALID, want);

    put(&d, "bad.txt", "policy: mask\nfine\n !!! -- \n");
    snprintf(want, sizeof want, "%s/bad.txt:3: word is empty", d.path);
    expect_refused(&d, SB_E_INVALID, want);

    put(&d, "bad.txt", "word\npolicy: mask\n");
    snprintf(want, sizeof want, "%s/bad.txt:1: a \"policy:", d.path);
    expect_refused(&d, SB_E_INVALID, want);

    put(&d, "bad.txt", "policy: mask\npolicy: block\n");
    expect_refused(&d, SB_E_INVALID, "bad.txt:2: policy given twice");

    put(&d, "bad.txt", "# only a comment\n");
    expect_refused(&d, SB_E_INVALID, "bad.txt: no \"policy:");

    put_file(&d, "bad.txt", "policy: mask\nab\0cd\n", 19);
    expect_refused(&d, SB_E_INVALID, "bad.txt:2: NUL byte");

    char line[200];
    memset(line, 'x', 65);
    snprintf(line + 65, sizeof line - 65, "\n");
    char text[300];
    snprintf(text, sizeof text, "policy: mask\n%s", line);
    put(&d, "bad.txt", text);
    expect_refused(&d, SB_E_TOO_LARGE, "bad.txt:2: word longer than 64");

    size_t ll = 14 + SB_FILTER_LINE_BYTES_MAX + 1;
    char *longline = malloc(ll);
    memset(longline, ' ', ll);
    memcpy(longline, "policy: mask\nx", 14);
    longline[ll - 1] = '\n';
    put_file(&d, "bad.txt", longline, ll);
    free(longline);
    expect_refused(&d, SB_E_TOO_LARGE, "bad.txt:2: line longer than");

    rm_file(&d, "bad.txt");
    put(&d, "bad name.txt", "policy: mask\nx\n");
    expect_refused(&d, SB_E_INVALID, "bad category name \"bad name\"");
    rm_file(&d, "bad name.txt");

    /* The directory itself: missing, empty. */
    rm_file(&d, "good.txt");
    expect_refused(&d, SB_E_INVALID, "no word lists");
    assert_int_equal(rmdir(d.path), 0);
    expect_refused(&d, -ENOENT, d.path);
}

/* An owner's reload: it holds the filter in force, readers take a
 * reference for the time of a scan; a broken reload changes nothing, a
 * good one swaps, and a reader still holding the old filter keeps it
 * usable until it lets go. */
static void test_reload_swap(void **state)
{
    (void)state;
    tmpdir d;
    dir_make(&d);
    put(&d, "words.txt", "policy: block\nbadword\n");
    sb_filter *cur = NULL;
    char err[SB_FILTER_ERR_BYTES];
    assert_int_equal(sb_filter_load_dir(d.path, &cur, err, sizeof err), 0);

    /* A broken edit is refused; the old filter stays in force. */
    put(&d, "words.txt", "policy: block\nbadword\n\xff\n");
    sb_filter *next = NULL;
    assert_int_equal(sb_filter_load_dir(d.path, &next, err, sizeof err),
                     SB_E_INVALID);
    assert_null(next);
    assert_non_null(strstr(err, "words.txt:3: invalid UTF-8"));
    assert_int_equal(verdict(cur, "badword"), SB_FILTER_BLOCK);

    /* A reader in the middle of a scan holds a reference. */
    sb_filter *reader = sb_filter_retain(cur);

    put(&d, "words.txt", "policy: mask\nnewword\n");
    assert_int_equal(sb_filter_load_dir(d.path, &next, err, sizeof err), 0);
    sb_filter *old = cur;
    cur = next;
    sb_filter_release(old);
    assert_int_equal(verdict(cur, "badword"), SB_FILTER_PASS);
    assert_int_equal(verdict(cur, "newword"), SB_FILTER_MASK);
    assert_int_equal(verdict(reader, "badword"), SB_FILTER_BLOCK);
    sb_filter_release(reader); /* the old filter goes now */
    sb_filter_release(cur);
    const char *names[] = {"words.txt"};
    dir_remove(&d, names, 1);
}

/* 100,000 words compile, and every one of them is found. */
static void test_many_words(void **state)
{
    (void)state;
    size_t n = 100000, cap = n * 16 + 32, k = 0;
    char *text = malloc(cap);
    k += (size_t)snprintf(text, cap, "policy: review\n");
    for (size_t i = 0; i < n; i++) {
        /* a letter prefix and a number: distinct, overlapping prefixes */
        k += (size_t)snprintf(text + k, cap - k, "w%c%zu\n",
                              (char)('a' + i % 26), i * 7919 % 1000003);
    }
    const char *ct[] = {"many", text};
    sb_filter *f = lists(1, ct);
    assert_int_equal(sb_filter_words(f), n);
    char probe[32];
    for (size_t i = 0; i < n; i += 997) {
        snprintf(probe, sizeof probe, "x w%c%zu!", (char)('a' + i % 26),
                 i * 7919 % 1000003);
        assert_int_equal(verdict(f, probe), SB_FILTER_REVIEW);
    }
    assert_int_equal(verdict(f, "nothing here w"), SB_FILTER_PASS);
    sb_filter_release(f);
    free(text);
}

static void test_compile_refusals(void **state)
{
    (void)state;
    sb_filter *f = (sb_filter *)1;
    char err[SB_FILTER_ERR_BYTES];
    sb_filter_list l[2] = {{"same", "one.txt", "policy: mask\n", 13},
                           {"same", "two.txt", "policy: mask\n", 13}};
    assert_int_equal(sb_filter_compile(l, 2, &f, err, sizeof err),
                     SB_E_INVALID);
    assert_null(f);
    assert_non_null(strstr(err, "two.txt: category \"same\" given twice"));
    sb_filter_list many[SB_FILTER_CATEGORIES_MAX + 1];
    for (size_t i = 0; i < SB_FILTER_CATEGORIES_MAX + 1; i++)
        many[i] = (sb_filter_list){"c", NULL, "policy: mask\n", 13};
    assert_int_equal(sb_filter_compile(many, SB_FILTER_CATEGORIES_MAX + 1, &f,
                                       err, sizeof err),
                     SB_E_TOO_LARGE);
    /* No err buffer at all is fine too. */
    l[0].text = "policy: x\n";
    l[0].len = 10;
    assert_int_equal(sb_filter_compile(l, 1, &f, NULL, 0), SB_E_INVALID);
    /* A list with a policy and no words is an empty category. */
    l[0] = (sb_filter_list){"empty", NULL, "policy: block\n", 14};
    assert_int_equal(sb_filter_compile(l, 1, &f, err, sizeof err), 0);
    assert_int_equal(sb_filter_words(f), 0);
    assert_int_equal(verdict(f, "anything"), SB_FILTER_PASS);
    sb_filter_release(f);
    sb_filter_release(NULL);
}

/* ---- the automaton against a brute-force reference ---------------------- */

static uint64_t rng = 0x5eed;

static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

/* Pieces of text: letters (some in several forms), ignorables, a letter in
 * no word, one that normalises to two letters, and an invalid byte. */
static const char *const PIECES[] = {
    "a",
    "b",
    "c",
    "A",
    "\xef\xbd\x81" /* ａ */,
    "d",
    "傻",
    "瓜",
    "子",
    "\xe5\x82\xbb" /* 傻 again */,
    " ",
    ".",
    "\xe2\x80\x8b",
    "，",
    "x",
    "\xef\xac\x81" /* ﬁ */,
    "f",
    "i",
    "1",
    "\xff",
    "蛋",
    "坏",
    "笨",
};
static const char *const WORD_PIECES[] = {"a", "b", "c", "傻", "瓜", "f", "i",
                                          "1", "B", " ", "蛋", "坏", "笨"};

typedef struct ref_letter {
    uint32_t cp;    /* normalised letter; 0: breaks every match */
    size_t at, end; /* the code point it came from */
} ref_letter;

/* The length of the code point at s, 0 for an invalid byte. */
static size_t utf8_len(const char *s, size_t n)
{
    unsigned char c = (unsigned char)s[0];
    size_t k = c < 0x80   ? 1
               : c < 0xC2 ? 0
               : c < 0xE0 ? 2
               : c < 0xF0 ? 3
               : c < 0xF5 ? 4
                          : 0;
    return k == 0 || k > n || !sb_utf8_valid(s, k) ? 0 : k;
}

/* The normalised letters of text, each with its code point's bytes. */
static size_t ref_letters(const char *t, size_t n, ref_letter *out)
{
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        size_t cl = utf8_len(t + i, n - i);
        if (cl == 0) {
            out[k++] = (ref_letter){0, i, i + 1};
            i++;
            continue;
        }
        char norm[64];
        size_t m = sb_filter_normalize(t + i, cl, norm, sizeof norm);
        for (size_t j = 0; j < m;) {
            size_t l = utf8_len(norm + j, m - j);
            uint32_t cp = 0;
            for (size_t q = 0; q < l; q++)
                cp = cp << 8 | (unsigned char)norm[j + q];
            out[k++] = (ref_letter){cp, i, i + cl};
            j += l;
        }
        i += cl;
    }
    return k;
}

/* Whether the code point around byte i is an ASCII letter or digit once
 * normalised (before: the one ending at i; else the one starting at i). */
static bool ref_alnum(const char *t, size_t n, size_t i, bool before)
{
    if (before) {
        if (i == 0) return false;
        size_t b = i - 1;
        while (b > 0 && i - b < 4 && ((unsigned char)t[b] & 0xC0) == 0x80)
            b--;
        if (utf8_len(t + b, n - b) != i - b) b = i - 1;
        i = b;
    } else if (i >= n) {
        return false;
    }
    size_t cl = utf8_len(t + i, n - i);
    if (cl == 0) return false;
    char norm[64];
    size_t m = sb_filter_normalize(t + i, cl, norm, sizeof norm);
    return m > 0 && ((norm[0] >= 'a' && norm[0] <= 'z') ||
                     (norm[0] >= '0' && norm[0] <= '9'));
}

typedef struct ref_word {
    char raw[128];
    ref_letter l[32];
    size_t n;
    int cat;
    bool bs, be;
} ref_word;

static void test_against_reference(void **state)
{
    (void)state;
    static const sb_filter_policy pol[3] = {SB_FILTER_BLOCK, SB_FILTER_MASK,
                                            SB_FILTER_REVIEW};
    static const char *const head[3] = {"policy: block\n", "policy: mask\n",
                                        "policy: review\n"};
    for (int round = 0; round < 300; round++) {
        /* A random filter of up to 12 words in 3 categories; every other
         * round has long ones (states past the wide rows). */
        char text_of[3][1024];
        ref_word words[12];
        size_t nw = 1 + rnd(12);
        for (int c = 0; c < 3; c++)
            snprintf(text_of[c], 1024, "%s", head[c]);
        for (size_t w = 0; w < nw; w++) {
            char word[128] = "";
            size_t len = 1 + rnd(round % 2 ? 12 : 4);
            for (size_t k = 0; k < len; k++)
                strcat(
                    word,
                    WORD_PIECES[rnd(sizeof WORD_PIECES / sizeof *WORD_PIECES)]);
            if (strspn(word, " ") == strlen(word)) strcat(word, "a");
            ref_word *rw = &words[w];
            snprintf(rw->raw, sizeof rw->raw, "%s", word);
            rw->cat = (int)rnd(3);
            rw->bs = rnd(4) == 0;
            rw->be = rnd(4) == 0;
            rw->n = ref_letters(word, strlen(word), rw->l);
            char line[160];
            snprintf(line, sizeof line, "%s%s%s\n", rw->bs ? "|" : "", word,
                     rw->be ? "|" : "");
            strcat(text_of[rw->cat], line);
        }
        const char *ct[] = {"b", text_of[0], "m", text_of[1], "r", text_of[2]};
        sb_filter *f = lists(3, ct);
        for (int t = 0; t < 40; t++) {
            char text[512] = "";
            size_t pieces = rnd(60), at = t % 2 ? rnd(pieces + 1) : SIZE_MAX;
            for (size_t k = 0; k <= pieces; k++) {
                if (k == at) { /* a word, maybe with separators inside */
                    const char *wr = words[rnd((uint32_t)nw)].raw;
                    for (size_t q = 0; wr[q]; q++) {
                        strncat(text, wr + q, 1);
                        bool cont = ((unsigned char)wr[q + 1] & 0xC0) == 0x80;
                        if (rnd(4) == 0 && !cont)
                            strcat(text, rnd(2) ? "." : "\xe2\x80\x8b");
                    }
                }
                if (k < pieces)
                    strcat(text, PIECES[rnd(sizeof PIECES / sizeof *PIECES)]);
            }
            size_t n = strlen(text);
            ref_letter L[512];
            size_t nl = ref_letters(text, n, L);

            /* Brute force: every word at every letter; repeats of a word
             * (same letters, category and boundaries) count once. */
            sb_filter_verdict want = {0};
            size_t span_a[512], span_b[512], ns = 0;
            for (size_t w = 0; w < nw; w++) {
                bool dup = false;
                for (size_t o = 0; o < w && !dup; o++) {
                    ref_word *x = &words[o], *y = &words[w];
                    dup = x->n == y->n && x->cat == y->cat && x->bs == y->bs &&
                          x->be == y->be;
                    for (size_t q = 0; dup && q < x->n; q++)
                        dup = x->l[q].cp == y->l[q].cp;
                }
                if (dup) continue;
                for (size_t i = 0; i + words[w].n <= nl; i++) {
                    bool ok = true;
                    for (size_t q = 0; ok && q < words[w].n; q++)
                        ok = L[i + q].cp && L[i + q].cp == words[w].l[q].cp;
                    if (!ok) continue;
                    size_t a = L[i].at, b = L[i + words[w].n - 1].end;
                    if (words[w].bs && ref_alnum(text, n, a, true)) continue;
                    if (words[w].be && ref_alnum(text, n, b, false)) continue;
                    sb_filter_policy p = pol[words[w].cat];
                    want.matches++;
                    want.categories |= 1u << words[w].cat;
                    want.policies |= 1u << p;
                    if (p > want.policy) want.policy = p;
                    if (p == SB_FILTER_MASK) {
                        span_a[ns] = a;
                        span_b[ns++] = b;
                    }
                }
            }
            char masked[512];
            size_t mk = 0;
            for (size_t i = 0; i < n;) {
                bool in = false;
                for (size_t q = 0; q < ns && !in; q++)
                    in = span_a[q] <= i && i < span_b[q];
                size_t cl = utf8_len(text + i, n - i);
                if (cl == 0) cl = 1;
                if (in) {
                    masked[mk++] = '*';
                } else {
                    memcpy(masked + mk, text + i, cl);
                    mk += cl;
                }
                i += cl;
            }
            masked[mk] = '\0';

            sb_filter_verdict got;
            assert_int_equal(sb_filter_scan(f, text, n, &got), 0);
            if (got.policy != want.policy || got.policies != want.policies ||
                got.categories != want.categories ||
                got.matches != want.matches ||
                (want.policy == SB_FILTER_MASK &&
                 strcmp(got.masked, masked) != 0))
                fail_msg("round %d text \"%s\"\nlists:\n%s%s%s"
                         "got %d/%x/%x/%u \"%s\", want %d/%x/%x/%u \"%s\"",
                         round, text, text_of[0], text_of[1], text_of[2],
                         got.policy, got.policies, (unsigned)got.categories,
                         got.matches, got.masked ? got.masked : "", want.policy,
                         want.policies, (unsigned)want.categories, want.matches,
                         masked);
            sb_filter_verdict_clear(&got);
        }
        sb_filter_release(f);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_and_case),
        cmocka_unit_test(test_fullwidth_and_compat),
        cmocka_unit_test(test_separators_between_letters),
        cmocka_unit_test(test_chinese),
        cmocka_unit_test(test_policies),
        cmocka_unit_test(test_mask_positions),
        cmocka_unit_test(test_no_false_match),
        cmocka_unit_test(test_overlapping_words),
        cmocka_unit_test(test_invalid_text),
        cmocka_unit_test(test_normalize),
        cmocka_unit_test(test_load_dir),
        cmocka_unit_test(test_broken_lists),
        cmocka_unit_test(test_reload_swap),
        cmocka_unit_test(test_many_words),
        cmocka_unit_test(test_compile_refusals),
        cmocka_unit_test(test_against_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
