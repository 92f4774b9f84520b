/* dashboard.c — the page and its script, from the binary (dashboard.h). */
#include "dashboard.h"

#include "tributary/core_common.h"

#include <stdlib.h>
#include <string.h>

/* The assets, NUL-terminated, assembled in (paths from the build's cwd, the
 * repository root; the Makefile makes this object depend on them). */
__asm__(".section .rodata\n"
        ".global recon_asset_html\n"
        "recon_asset_html:\n"
        ".incbin \"svc-recon/assets/dashboard.html\"\n"
        ".byte 0\n"
        ".global recon_asset_js\n"
        "recon_asset_js:\n"
        ".incbin \"svc-recon/assets/app.js\"\n"
        ".byte 0\n"
        ".previous\n");
extern const char recon_asset_html[];
extern const char recon_asset_js[];

static void serve(core_http_response *resp, const char *type, const char *text)
{
    resp->content_type = type;
    resp->body = strdup(text);
    if (!resp->body)
        resp->status = 500;
}

static void h_page(const core_http_request *req, core_http_response *resp, void *opaque)
{
    (void)req;
    (void)opaque;
    serve(resp, "text/html; charset=utf-8", recon_asset_html);
}

static void h_js(const core_http_request *req, core_http_response *resp, void *opaque)
{
    (void)req;
    (void)opaque;
    serve(resp, "text/javascript; charset=utf-8", recon_asset_js);
}

int recon_dashboard_register(core_http_t *h)
{
    int rc;
    if ((rc = core_http_route(h, "GET", "/dashboard", h_page, NULL)) != CORE_OK ||
        (rc = core_http_route(h, "GET", "/dashboard/app.js", h_js, NULL)) != CORE_OK)
        return rc;
    return CORE_OK;
}
