/* The table c2a-http.so exports; see http_api.h. */
#include "http_api.h"

const struct http_api c2a_http_api = {fetcher_new,  fetcher_free,    fetch_start,        fetch_cancel,
                                      content_prepare, content_ssml_plain, content_split};
