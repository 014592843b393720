/*
 * HTTP support (fetch.c, content.c: libcurl, libxml2) lives in c2a-http.so,
 * which a worker loads the first time a job needs it (a url, an upload, a
 * callback, the http engine): libcurl and its dependencies cost a worker some
 * 8 MB of RSS, which a pool that never fetches should not pay.
 */
#ifndef C2A_HTTP_API_H
#define C2A_HTTP_API_H

#include "content.h"
#include "fetch.h"

struct http_api {
    struct fetcher *(*fetcher_new)(struct event_base *base, const struct config *cfg, char *err,
                                   size_t errlen);
    void (*fetcher_free)(struct fetcher *f);
    struct fetch *(*fetch_start)(struct fetcher *f, const struct fetch_req *req,
                                 fetch_done_fn done, void *arg);
    void (*fetch_cancel)(struct fetch *x);
    int (*content_prepare)(const char *body, size_t len, const char *content_type,
                           struct content *out, char *err, size_t errlen);
    int (*content_ssml_plain)(const char *ssml, size_t len, struct content *out, char *err,
                              size_t errlen);
    int (*content_split)(const char *text, size_t len, size_t max, char ***pieces);
};

#define HTTP_API_SYMBOL "c2a_http_api"

/* Load c2a-http.so (beside c2a-pipeline.so) once; NULL with a reason when it
 * cannot be loaded. Loop thread only. */
const struct http_api *http_api_load(char *err, size_t errlen);

#endif
