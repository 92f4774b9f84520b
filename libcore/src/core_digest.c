/* core_digest.c — SHA-256 (OpenSSL libcrypto) and the additive aggregate. */
#include "tributary/core_digest.h"
#include "tributary/core_common.h"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <string.h>

/* OpenSSL 3's SHA256() fetches the algorithm on every call, which costs as
 * much as hashing a record; fetch it once (thread-safe to share after). */
static EVP_MD *g_sha256;
static pthread_once_t g_sha256_once = PTHREAD_ONCE_INIT;

static void fetch_sha256(void)
{
    g_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
}

void core_digest_sha256(const void *buf, size_t len, core_digest *out)
{
    pthread_once(&g_sha256_once, fetch_sha256);
    if (!g_sha256 || !EVP_Digest(buf, len, out->b, NULL, g_sha256, NULL))
        SHA256((const unsigned char *)buf, len, out->b);
}

void core_digest_record(const void *value, size_t len, core_digest *out)
{
    const uint8_t *p = value;

    if (len >= 5 && p[0] == 0x00) {
        p += 5;
        len -= 5;
    }
    core_digest_sha256(p, len, out);
}

void core_digest_to_hex(const core_digest *d, char *hex)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < CORE_DIGEST_LEN; i++) {
        hex[2 * i] = digits[d->b[i] >> 4];
        hex[2 * i + 1] = digits[d->b[i] & 0xf];
    }
    hex[CORE_DIGEST_HEX_LEN] = '\0';
}

int core_digest_from_hex(const char *hex, core_digest *out)
{
    if (!hex || strlen(hex) != CORE_DIGEST_HEX_LEN)
        return -1;
    for (size_t i = 0; i < CORE_DIGEST_LEN; i++) {
        int hi = core_hex_value(hex[2 * i]), lo = core_hex_value(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out->b[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

bool core_digest_equal(const core_digest *a, const core_digest *b)
{
    return memcmp(a->b, b->b, CORE_DIGEST_LEN) == 0;
}

void core_digest_agg_init(core_digest_agg *a)
{
    memset(a, 0, sizeof(*a));
}

/* sum = sum + x (mod 2^256), big-endian. */
static void add256(uint8_t *sum, const uint8_t *x)
{
    unsigned carry = 0;

    for (int i = CORE_DIGEST_LEN - 1; i >= 0; i--) {
        unsigned v = (unsigned)sum[i] + x[i] + carry;
        sum[i] = (uint8_t)v;
        carry = v >> 8;
    }
}

/* sum = sum - x (mod 2^256), big-endian. */
static void sub256(uint8_t *sum, const uint8_t *x)
{
    int borrow = 0;

    for (int i = CORE_DIGEST_LEN - 1; i >= 0; i--) {
        int v = (int)sum[i] - x[i] - borrow;
        borrow = v < 0;
        sum[i] = (uint8_t)(v + (borrow ? 256 : 0));
    }
}

void core_digest_agg_add(core_digest_agg *a, const core_digest *d)
{
    add256(a->sum, d->b);
    a->count++;
}

void core_digest_agg_remove(core_digest_agg *a, const core_digest *d)
{
    sub256(a->sum, d->b);
    a->count--;
}

void core_digest_agg_merge(core_digest_agg *a, const core_digest_agg *b)
{
    add256(a->sum, b->sum);
    a->count += b->count;
}

bool core_digest_agg_equal(const core_digest_agg *a, const core_digest_agg *b)
{
    return a->count == b->count && memcmp(a->sum, b->sum, CORE_DIGEST_LEN) == 0;
}

void core_digest_agg_to_hex(const core_digest_agg *a, char *hex)
{
    core_digest_to_hex((const core_digest *)a->sum, hex);
}
