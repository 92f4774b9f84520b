/* pattern.h — anchored patterns of one character set per atom ("^[0-9]{9}$"),
 * matched in one pass without regexec(): what most rule patterns are. A
 * pattern this cannot match exactly is refused at compile time; use
 * regcomp()/regexec() for it. Read-only once compiled (any thread). */
#ifndef SVC_VALIDATOR_PATTERN_H
#define SVC_VALIDATOR_PATTERN_H

#include <stdbool.h>

typedef struct vpattern vpattern;

/** @returns the pattern compiled (vpattern_free()), or NULL when it is not
 * one of the simple ones (or out of memory): then use regexec(). */
vpattern *vpattern_compile(const char *pat);
/** @returns whether s matches (as regexec() would with the same pattern). */
bool vpattern_match(const vpattern *re, const char *s);
void vpattern_free(vpattern *re);

#endif
