/* core_http_request.c — what a handler reads from a request and writes into
 * a response: query parameters (percent-decoded), headers, JSON string
 * escaping (core_http.h). */
#include "tributary/core_http.h"
#include "tributary/core_common.h"

#include <microhttpd.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

char *core_http_json_escape(const char *s)
{
    size_t n = 0;
    const unsigned char *p;
    char *out, *o;

    if (!s)
        s = "";
    for (p = (const unsigned char *)s; *p; p++)
        n += (*p == '"' || *p == '\\') ? 2 : (*p < 0x20 ? 6 : 1);
    out = malloc(n + 1);
    if (!out)
        return NULL;
    for (o = out, p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            *o++ = '\\';
            *o++ = (char)*p;
        } else if (*p < 0x20) {
            o += sprintf(o, "\\u%04x", *p);
        } else {
            *o++ = (char)*p;
        }
    }
    *o = '\0';
    return out;
}


/* Percent-decode s[0..n) into out (room for n + 1); '+' is a space.
 * Returns the decoded length, or -1 on a malformed escape. */
static long url_decode(const char *s, size_t n, char *out)
{
    size_t i, o = 0;

    for (i = 0; i < n; i++) {
        if (s[i] == '%') {
            int hi, lo;

            if (i + 2 >= n)
                return -1;
            hi = core_hex_value((unsigned char)s[i + 1]);
            lo = core_hex_value((unsigned char)s[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else if (s[i] == '+') {
            out[o++] = ' ';
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return (long)o;
}

int core_http_query_param(const core_http_request *req, const char *name, char *buf,
                          size_t size)
{
    const char *p, *end, *eq, *amp;
    char *tmp;
    size_t qlen;
    int rc = CORE_ERR_NOTFOUND;

    if (!req || !name || !buf || size == 0)
        return CORE_ERR_INVALID;
    buf[0] = '\0';
    if (!req->query)
        return CORE_ERR_NOTFOUND;
    qlen = strlen(req->query);
    tmp = malloc(qlen + 1);
    if (!tmp)
        return CORE_ERR_NOMEM;
    end = req->query + qlen;
    for (p = req->query; p < end && rc == CORE_ERR_NOTFOUND; p = amp + 1) {
        long klen, vlen;

        amp = memchr(p, '&', (size_t)(end - p));
        if (!amp)
            amp = end;
        eq = memchr(p, '=', (size_t)(amp - p));
        klen = url_decode(p, (size_t)((eq ? eq : amp) - p), tmp);
        if (klen < 0 || strlen(tmp) != (size_t)klen || strcmp(tmp, name) != 0)
            continue; /* not this one (or an undecodable name) */
        if (!eq) {
            tmp[0] = '\0';
            vlen = 0;
        } else {
            vlen = url_decode(eq + 1, (size_t)(amp - eq - 1), tmp);
        }
        if (vlen < 0) {
            rc = CORE_ERR_INVALID;
        } else if ((size_t)vlen >= size) {
            memcpy(buf, tmp, size - 1);
            buf[size - 1] = '\0';
            rc = CORE_ERR_TOOBIG;
        } else {
            memcpy(buf, tmp, (size_t)vlen + 1);
            rc = CORE_OK;
        }
    }
    free(tmp);
    return rc;
}

const char *core_http_header(const core_http_request *req, const char *name)
{
    if (!req || !req->conn_ || !name)
        return NULL;
    return MHD_lookup_connection_value((struct MHD_Connection *)req->conn_, MHD_HEADER_KIND,
                                       name);
}
