/* checks.h — the checks a rule names with "check" (proto/README.md): each
 * takes the value's text and answers whether it passes. NULL fails. */
#ifndef SVC_VALIDATOR_CHECKS_H
#define SVC_VALIDATOR_CHECKS_H

#include <stdbool.h>

bool vcheck_aba(const char *s);
bool vcheck_luhn(const char *s);
bool vcheck_iban(const char *s);
bool vcheck_iso3166_alpha2(const char *s);
bool vcheck_iso4217(const char *s);
bool vcheck_email(const char *s);
bool vcheck_uuid(const char *s);

#endif
