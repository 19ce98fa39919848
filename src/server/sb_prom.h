/* The Prometheus text exposition format (version 0.0.4), written into a
 * buffer: a family's # HELP and # TYPE lines, then its samples, each with
 * its labels escaped. Histograms come from sb_hist, scaled to base units
 * (seconds from ms or us). Pure: no I/O. */
#ifndef SB_PROM_H
#define SB_PROM_H

#include <stddef.h>
#include <stdint.h>

#include "sb_buf.h"
#include "sb_hist.h"

#define SB_PROM_LABELS_BYTES_MAX 512 /* one sample's labels, escaped */

/* The text being written; rc is the first failure (-ENOMEM), after which
 * nothing more is written. */
typedef struct sb_prom {
    sb_buf *out;
    int rc;
} sb_prom;

typedef enum sb_prom_type {
    SB_PROM_COUNTER,
    SB_PROM_GAUGE,
    SB_PROM_HISTOGRAM,
} sb_prom_type;

/* Starts a family: name (a valid metric name), its type and one line of
 * help. Every sample of the family follows before the next family. */
void sb_prom_family(sb_prom *p, const char *name, sb_prom_type type,
                    const char *help);

/* Labels as the samples take them: pairs of name and value, NULL after
 * the last, escaped into buf ('a="x",b="y"'; "" for none). Values longer
 * than fits are cut. Returns buf. */
char *sb_prom_labels(char *buf, size_t cap, ...);

/* One sample of the family: name{labels} value. labels NULL or "": none. */
void sb_prom_u64(sb_prom *p, const char *name, const char *labels, uint64_t v);
void sb_prom_f64(sb_prom *p, const char *name, const char *labels, double v);

/* A histogram's samples: name_bucket for each bound (times scale, the
 * base unit per unit of h: 0.001 for ms to seconds) and +Inf, cumulative,
 * then name_sum and name_count. */
void sb_prom_hist(sb_prom *p, const char *name, const char *labels,
                  const sb_hist *h, double scale);

#endif
