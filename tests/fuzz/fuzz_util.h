/* fuzz_util.h — what the libFuzzer harnesses of tests/fuzz share: the
 * catalogue of proto/ (loaded once), an input as a file (a memfd, so a
 * reader that takes a path reads the fuzzer's bytes without touching the
 * disk), and FUZZ_CHECK, the abort on a broken invariant. Header-only: each
 * harness is one translation unit (Makefile, `make fuzz`). */
#ifndef TB_FUZZ_UTIL_H
#define TB_FUZZ_UTIL_H

#include "tributary/core_avro.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef TB_PROTO_DIR
#define TB_PROTO_DIR "proto"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Abort, naming the invariant, when cond is false. */
#define FUZZ_CHECK(cond, ...)                                                  \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "invariant broken at %s:%d: %s: ", __FILE__,       \
                    __LINE__, #cond);                                          \
            fprintf(stderr, __VA_ARGS__);                                      \
            fputc('\n', stderr);                                               \
            abort();                                                           \
        }                                                                      \
    } while (0)

/* The catalogue of $TB_PROTO_DIR (else TB_PROTO_DIR), loaded on first use
 * and kept for the process. */
static inline core_avro_catalog_t *fuzz_catalog(void)
{
    static core_avro_catalog_t *cat;
    char err[512];
    const char *dir;

    if (cat)
        return cat;
    dir = getenv("TB_PROTO_DIR");
    if (!dir || !*dir)
        dir = TB_PROTO_DIR;
    cat = core_avro_catalog_load(dir, err, sizeof(err));
    if (!cat) {
        fprintf(stderr, "fuzz: catalogue %s: %s\n", dir, err);
        abort();
    }
    return cat;
}

/* data[0..size) as a file: its path goes to path (room for 64 bytes).
 * @returns the memfd (close() it when done) or -1. */
static inline int fuzz_file(const void *data, size_t size, char path[64])
{
    int fd = memfd_create("fuzz-input", MFD_CLOEXEC);
    const char *p = data;
    size_t off = 0;

    if (fd < 0)
        return -1;
    while (off < size) {
        ssize_t n = write(fd, p + off, size - off);
        if (n <= 0) {
            close(fd);
            return -1;
        }
        off += (size_t)n;
    }
    snprintf(path, 64, "/proc/self/fd/%d", fd);
    return fd;
}

#endif
