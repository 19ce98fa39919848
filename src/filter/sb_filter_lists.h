/* The filter's word lists: their text format (a policy line, then one word
 * per line; docs/filter.md) parsed into the automaton's trie, and the
 * directory of NAME.txt files they are read from (sb_filter_load_dir() in
 * sb_filter.h). Internal to src/filter. */
#ifndef SB_FILTER_LISTS_H
#define SB_FILTER_LISTS_H

#include <stddef.h>
#include <stdint.h>

#include "sb_filter_ac.h"

/* Parses list l as category number cat of t's filter: its name and policy
 * into the filter's cats[cat], each word normalised and added to t.
 * Returns 0, SB_E_INVALID, SB_E_TOO_LARGE or -ENOMEM (the codes of
 * sb_filter_compile()); on failure err (if err_len > 0) holds one line
 * naming the list and line. The normaliser must be initialised. */
int sb__filter_lists_parse(sb__filter_trie *t, const sb_filter_list *l,
                           uint8_t cat, char *err, size_t err_len);

#endif
