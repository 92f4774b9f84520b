/* dashboard.h — the operations page svc-recon serves from its binary:
 *
 *   GET /dashboard          the page (svc-recon/assets/dashboard.html)
 *   GET /dashboard/app.js   its script (svc-recon/assets/app.js)
 *
 * No CDN, no library: the assets are assembled into the binary (.incbin).
 * Both are open (auth.h): they hold no data. The script reads the token
 * from the URL fragment (#token=...&batch=ID; a fragment never reaches the
 * server or its logs), keeps it in sessionStorage, and calls the API with
 * it: batches and their counts (an SVG chart), a batch's discrepant records,
 * and a replay button for a batch with missing records (operator). */
#ifndef SVC_RECON_DASHBOARD_H
#define SVC_RECON_DASHBOARD_H

#include "tributary/core_http.h"

int recon_dashboard_register(core_http_t *h);

#endif
