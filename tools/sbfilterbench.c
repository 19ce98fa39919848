/* sbfilterbench: throughput and per-message latency of the sensitive-word
 * filter. Generates, from a seed, a word list of mixed Chinese and English
 * words (split over a block, a mask and a review category) and a corpus of
 * mixed Chinese and English chat text with some of the words (and evasive
 * spellings of them) mixed in; then measures the scan of the corpus in
 * body-sized messages (MB/s) and of 100-byte messages (ns per message).
 * Prints a summary and one JSON line. */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sb_filter.h"

#define CJK_POOL 3000
#define EN_VOCAB 4000
#define BODY_BYTES 8192

static uint64_t rng_state;

/* splitmix64: deterministic for a seed, good enough for text. */
static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double unif(void)
{
    return (double)(rnd() >> 11) / (double)(1ull << 53);
}

/* An index in [0, n) skewed toward 0, as word frequencies are. */
static size_t skewed(size_t n)
{
    double u = unif();
    return (size_t)(u * u * (double)n);
}

typedef struct text {
    char *p;
    size_t len, cap;
} text;

static void put(text *t, const char *s, size_t n)
{
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 4096;
        while (cap < t->len + n + 1)
            cap *= 2;
        t->p = realloc(t->p, cap);
        if (!t->p) {
            perror("sbfilterbench");
            exit(1);
        }
        t->cap = cap;
    }
    memcpy(t->p + t->len, s, n);
    t->len += n;
    t->p[t->len] = '\0';
}

static void puts_(text *t, const char *s)
{
    put(t, s, strlen(s));
}

static void put_cp(text *t, uint32_t cp)
{
    char b[4];
    size_t n;
    if (cp < 0x80) {
        b[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (char)(0xC0 | cp >> 6);
        b[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else {
        b[0] = (char)(0xE0 | cp >> 12);
        b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    }
    put(t, b, n);
}

static uint32_t cjk[CJK_POOL]; /* the common characters */
static char en[EN_VOCAB][24];  /* the English-like vocabulary */

/* An English-like word of 1..syl_max syllables. */
static void en_word(char *out, size_t cap, int syl_min, int syl_max)
{
    static const char *on[] = {
        "b", "c", "d", "f",  "g",  "h",  "k",  "l",  "m",  "n",  "p",  "r", "s",
        "t", "v", "w", "st", "tr", "ch", "sh", "th", "pl", "gr", "br", ""};
    static const char *nu[] = {"a", "e", "i", "o", "u", "ea", "ou", "ai"};
    static const char *co[] = {"", "", "", "n", "r", "s", "t", "l", "ng", "ck"};
    int syl = syl_min + (int)(rnd() % (uint64_t)(syl_max - syl_min + 1));
    size_t k = 0;
    out[0] = '\0';
    for (int i = 0; i < syl; i++)
        k += (size_t)snprintf(out + k, cap - k, "%s%s%s",
                              on[rnd() % (sizeof on / sizeof *on)],
                              nu[rnd() % (sizeof nu / sizeof *nu)],
                              co[rnd() % (sizeof co / sizeof *co)]);
}

/* Distinct characters from the CJK Unified Ideographs block. */
static void pools_make(void)
{
    static uint8_t used[0x9FA6 - 0x4E00];
    for (size_t i = 0; i < CJK_POOL;) {
        uint32_t cp = 0x4E00 + (uint32_t)(rnd() % (0x9FA6 - 0x4E00));
        if (used[cp - 0x4E00]) continue;
        used[cp - 0x4E00] = 1;
        cjk[i++] = cp;
    }
    for (size_t i = 0; i < EN_VOCAB; i++)
        en_word(en[i], sizeof en[i], 1, 3);
}

typedef struct wordlist {
    text words[3]; /* block, mask, review: the list files' text */
    char **all;    /* every word, for the corpus */
    size_t n;
} wordlist;

static void list_make(wordlist *wl, size_t n)
{
    static const char *head[3] = {"policy: block\n", "policy: mask\n",
                                  "policy: review\n"};
    for (int c = 0; c < 3; c++)
        puts_(&wl->words[c], head[c]);
    wl->all = calloc(n, sizeof *wl->all);
    wl->n = n;
    for (size_t i = 0; i < n; i++) {
        text w = {0};
        if (i % 2 == 0) {
            char b[64];
            en_word(b, sizeof b, 2, 4);
            puts_(&w, b);
        } else {
            int len = 2 + (int)(rnd() % 3);
            for (int k = 0; k < len; k++)
                put_cp(&w, cjk[skewed(CJK_POOL)]);
        }
        int c = i % 10 < 2 ? 0 : i % 10 < 5 ? 1 : 2; /* 20/30/50 % */
        put(&wl->words[c], w.p, w.len);
        puts_(&wl->words[c], "\n");
        wl->all[i] = w.p;
    }
}

/* A list word as someone dodging the filter might write it. */
static void put_evasive(text *t, const char *w)
{
    static const char *seps[] = {" ", ".", "-", "\xE2\x80\x8B" /* ZWSP */,
                                 "\xEF\xBC\x8C" /* full-width comma */};
    const char *sep = seps[rnd() % 5];
    for (const char *p = w; *p;) {
        size_t n = 1;
        while ((p[n] & 0xC0) == 0x80)
            n++;
        if (p != w) puts_(t, sep);
        put(t, p, n);
        p += n;
    }
}

/* Chat-like text: English and Chinese sentences, with a list word in
 * about hit_rate of them (one in four written evasively). */
static void corpus_make(text *t, size_t bytes, const wordlist *wl,
                        double hit_rate, int mix)
{
    while (t->len < bytes) {
        bool zh = mix == 2 || (mix == 0 && rnd() % 2);
        int n = zh ? 8 + (int)(rnd() % 24) : 4 + (int)(rnd() % 12);
        int hit_at = unif() < hit_rate ? (int)(rnd() % (uint64_t)n) : -1;
        for (int i = 0; i < n; i++) {
            if (i == hit_at) {
                const char *w = wl->all[rnd() % wl->n];
                if (!zh) puts_(t, i ? " " : "");
                if (rnd() % 4 == 0)
                    put_evasive(t, w);
                else
                    puts_(t, w);
                continue;
            }
            if (zh) {
                put_cp(t, cjk[skewed(CJK_POOL)]);
                if (i > 4 && rnd() % 9 == 0) puts_(t, "\xEF\xBC\x8C"); /* ， */
            } else {
                if (i) puts_(t, " ");
                const char *w = en[skewed(EN_VOCAB)];
                if (i == 0) {
                    char c = (char)(w[0] - 'a' + 'A');
                    put(t, &c, 1);
                    puts_(t, w + 1);
                } else {
                    puts_(t, w);
                }
            }
        }
        puts_(t, zh ? "\xE3\x80\x82" /* 。 */ : ". ");
    }
}

static clockid_t bench_clock = CLOCK_MONOTONIC;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(bench_clock, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Length of the longest prefix of p[0..n) that ends on a character. */
static size_t cut(const char *p, size_t n)
{
    while (n > 0 && (p[n] & 0xC0) == 0x80)
        n--;
    return n;
}

typedef struct hits {
    size_t msgs, pass, review, mask, block;
} hits;

static void count(hits *h, const sb_filter_verdict *v)
{
    h->msgs++;
    switch (v->policy) {
    case SB_FILTER_PASS:
        h->pass++;
        break;
    case SB_FILTER_REVIEW:
        h->review++;
        break;
    case SB_FILTER_MASK:
        h->mask++;
        break;
    case SB_FILTER_BLOCK:
        h->block++;
        break;
    }
}

/* Scans the whole text in body-sized messages; returns MB/s (10^6 B/s),
 * the best of `rounds`. */
static double throughput(const sb_filter *f, const text *t, int rounds, hits *h)
{
    double best = 0;
    for (int r = 0; r < rounds; r++) {
        hits hh = {0};
        int64_t t0 = now_ns();
        for (size_t off = 0; off < t->len;) {
            size_t n = t->len - off;
            if (n > BODY_BYTES) n = cut(t->p + off, BODY_BYTES);
            sb_filter_verdict v;
            sb_filter_scan(f, t->p + off, n, &v);
            count(&hh, &v);
            sb_filter_verdict_clear(&v);
            off += n;
        }
        double s = (double)(now_ns() - t0) / 1e9;
        double mbs = (double)t->len / 1e6 / s;
        if (mbs > best) best = mbs;
        *h = hh;
    }
    return best;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: sbfilterbench [--seed N] [--words N] [--corpus-mib N]\n"
            "                     [--msgs N] [--hit-rate F] [--rounds N]\n"
            "                     [--cpu-clock] [--only mixed|en|zh]\n"
            "  --cpu-clock  time with the thread's CPU clock rather than the\n"
            "               wall clock (steadier on a busy machine)\n"
            "  --only C     measure the throughput on one corpus only\n");
}

int main(int argc, char **argv)
{
    uint64_t seed = 42;
    size_t words = 10000, corpus_mib = 64, msgs = 1000000;
    double hit_rate = 0.02;
    int rounds = 3;
    const char *only = "";
    static const struct option opts[] = {
        {"seed", 1, 0, 's'},       {"words", 1, 0, 'w'},
        {"corpus-mib", 1, 0, 'c'}, {"msgs", 1, 0, 'm'},
        {"hit-rate", 1, 0, 'r'},   {"rounds", 1, 0, 'R'},
        {"cpu-clock", 0, 0, 'C'},  {"only", 1, 0, 'o'},
        {"help", 0, 0, 'h'},       {0, 0, 0, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 's':
            seed = strtoull(optarg, NULL, 10);
            break;
        case 'w':
            words = strtoul(optarg, NULL, 10);
            break;
        case 'c':
            corpus_mib = strtoul(optarg, NULL, 10);
            break;
        case 'm':
            msgs = strtoul(optarg, NULL, 10);
            break;
        case 'r':
            hit_rate = strtod(optarg, NULL);
            break;
        case 'R':
            rounds = atoi(optarg);
            break;
        case 'C':
            bench_clock = CLOCK_THREAD_CPUTIME_ID;
            break;
        case 'o':
            only = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (words < 2 || corpus_mib < 1 || msgs < 1 || rounds < 1) {
        usage(stderr);
        return 2;
    }
    rng_state = seed;
    pools_make();
    wordlist wl = {0};
    list_make(&wl, words);

    /* Compile from memory, then load the same lists from files. */
    static const char *cats[3] = {"block", "mask", "review"};
    sb_filter_list lists[3];
    for (int c = 0; c < 3; c++)
        lists[c] =
            (sb_filter_list){cats[c], NULL, wl.words[c].p, wl.words[c].len};
    char err[SB_FILTER_ERR_BYTES];
    sb_filter *f = NULL;
    int64_t t0 = now_ns();
    if (sb_filter_compile(lists, 3, &f, err, sizeof err) != 0) {
        fprintf(stderr, "sbfilterbench: %s\n", err);
        return 1;
    }
    double compile_ms = (double)(now_ns() - t0) / 1e6;
    char dir[] = "/tmp/sbfilterbench.XXXXXX";
    double load_ms = -1;
    if (mkdtemp(dir)) {
        char path[64];
        for (int c = 0; c < 3; c++) {
            snprintf(path, sizeof path, "%s/%s.txt", dir, cats[c]);
            FILE *fp = fopen(path, "w");
            if (fp) {
                fwrite(wl.words[c].p, 1, wl.words[c].len, fp);
                fclose(fp);
            }
        }
        sb_filter *g = NULL;
        t0 = now_ns();
        if (sb_filter_load_dir(dir, &g, err, sizeof err) == 0)
            load_ms = (double)(now_ns() - t0) / 1e6;
        sb_filter_release(g);
        for (int c = 0; c < 3; c++) {
            snprintf(path, sizeof path, "%s/%s.txt", dir, cats[c]);
            unlink(path);
        }
        rmdir(dir);
    }

    text mixed = {0}, ascii = {0}, zh = {0};
    corpus_make(&mixed, corpus_mib << 20, &wl, hit_rate, 0);
    corpus_make(&ascii, (corpus_mib << 20) / 4, &wl, hit_rate, 1);
    corpus_make(&zh, (corpus_mib << 20) / 4, &wl, hit_rate, 2);

    hits hm = {0}, ha = {0}, hz = {0};
    bool all = !*only;
    double mbs =
        all || !strcmp(only, "mixed") ? throughput(f, &mixed, rounds, &hm) : 0;
    double mbs_ascii =
        all || !strcmp(only, "en") ? throughput(f, &ascii, rounds, &ha) : 0;
    double mbs_zh =
        all || !strcmp(only, "zh") ? throughput(f, &zh, rounds, &hz) : 0;

    /* 100-byte messages cut from the mixed corpus at random places. */
    size_t n_off = 4096;
    size_t *off = malloc(n_off * sizeof *off);
    size_t *len = malloc(n_off * sizeof *len);
    for (size_t i = 0; i < n_off; i++) {
        size_t o2 = (size_t)(rnd() % (mixed.len - 200));
        while ((mixed.p[o2] & 0xC0) == 0x80)
            o2++;
        off[i] = o2;
        len[i] = cut(mixed.p + o2, 100);
    }
    hits h100 = {0};
    double best_ns = 1e30;
    for (int r = 0; r < rounds; r++) {
        t0 = now_ns();
        for (size_t i = 0; i < msgs; i++) {
            sb_filter_verdict v;
            size_t k = i % n_off;
            sb_filter_scan(f, mixed.p + off[k], len[k], &v);
            if (r == 0) count(&h100, &v);
            sb_filter_verdict_clear(&v);
        }
        double ns = (double)(now_ns() - t0) / (double)msgs;
        if (ns < best_ns) best_ns = ns;
    }
    /* Percentiles, each message timed alone (clock reads included). */
    size_t n_lat = msgs < 200000 ? msgs : 200000;
    int64_t *lat = malloc(n_lat * sizeof *lat);
    for (size_t i = 0; i < n_lat; i++) {
        sb_filter_verdict v;
        size_t k = i % n_off;
        int64_t a = now_ns();
        sb_filter_scan(f, mixed.p + off[k], len[k], &v);
        sb_filter_verdict_clear(&v);
        lat[i] = now_ns() - a;
    }
    qsort(lat, n_lat, sizeof *lat, cmp_i64);
    int64_t p50 = lat[n_lat / 2], p99 = lat[n_lat * 99 / 100],
            p999 = lat[n_lat * 999 / 1000];

    printf("# sbfilterbench seed=%llu words=%zu (compiled %zu, %zu categories)"
           " corpus=%zu MiB hit-rate=%.3f clock=%s\n",
           (unsigned long long)seed, words, sb_filter_words(f),
           sb_filter_categories(f), corpus_mib, hit_rate,
           bench_clock == CLOCK_MONOTONIC ? "wall" : "cpu");
    printf("compile            %8.1f ms   (load from files %.1f ms, "
           "%.1f MiB)\n",
           compile_ms, load_ms, (double)sb_filter_bytes(f) / (1 << 20));
    printf("mixed zh/en        %8.1f MB/s  (%zu msgs of <= %d B: %zu block, "
           "%zu mask, %zu review)\n",
           mbs, hm.msgs, BODY_BYTES, hm.block, hm.mask, hm.review);
    printf("english only       %8.1f MB/s\n", mbs_ascii);
    printf("chinese only       %8.1f MB/s\n", mbs_zh);
    printf("100-byte message   %8.1f ns mean; timed alone p50 %lld ns, "
           "p99 %lld ns, p99.9 %lld ns (%.1f%% matched)\n",
           best_ns, (long long)p50, (long long)p99, (long long)p999,
           100.0 * (double)(h100.msgs - h100.pass) / (double)h100.msgs);
    printf("{\"bench\":\"filter\",\"seed\":%llu,\"words\":%zu,"
           "\"compile_ms\":%.1f,\"load_ms\":%.1f,\"mbps_mixed\":%.1f,"
           "\"mbps_en\":%.1f,\"mbps_zh\":%.1f,\"ns_per_100b_msg\":%.1f,"
           "\"p50_ns\":%lld,\"p99_ns\":%lld,\"p999_ns\":%lld}\n",
           (unsigned long long)seed, words, compile_ms, load_ms, mbs, mbs_ascii,
           mbs_zh, best_ns, (long long)p50, (long long)p99, (long long)p999);

    free(lat);
    free(off);
    free(len);
    free(mixed.p);
    free(ascii.p);
    free(zh.p);
    for (size_t i = 0; i < wl.n; i++)
        free(wl.all[i]);
    free(wl.all);
    for (int c = 0; c < 3; c++)
        free(wl.words[c].p);
    sb_filter_release(f);
    return 0;
}
