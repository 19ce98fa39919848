/* Message catalogs for the texts the server writes: system events are
 * stored as a key and arguments and rendered here in each recipient's
 * locale ("en" and "zh-CN"; other locales fall back by language, then to
 * English). */
#ifndef SB_I18N_H
#define SB_I18N_H

#include <stddef.h>

/* Renders key with args ({0}, {1}... in the template) for locale into out
 * (NUL-terminated, truncated to cap). An unknown key renders as the key
 * itself. Returns the length written. */
size_t sb_i18n_render(const char *locale, const char *key, char *const *args,
                      size_t n_args, char *out, size_t cap);

#endif
