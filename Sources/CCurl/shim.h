// Typed wrappers around libcurl's variadic setters, which Swift cannot call.
#ifndef KVWARM_CCURL_SHIM_H
#define KVWARM_CCURL_SHIM_H
#include <curl/curl.h>

typedef size_t (*kvwarm_curl_write_cb)(char *ptr, size_t size, size_t nmemb, void *userdata);
typedef int (*kvwarm_curl_xferinfo_cb)(void *userdata, curl_off_t dltotal, curl_off_t dlnow,
                                       curl_off_t ultotal, curl_off_t ulnow);

static inline CURLcode kvwarm_curl_setopt_long(CURL *h, CURLoption o, long v) {
    return curl_easy_setopt(h, o, v);
}
static inline CURLcode kvwarm_curl_setopt_string(CURL *h, CURLoption o, const char *v) {
    return curl_easy_setopt(h, o, v);
}
static inline CURLcode kvwarm_curl_setopt_pointer(CURL *h, CURLoption o, void *v) {
    return curl_easy_setopt(h, o, v);
}
static inline CURLcode kvwarm_curl_setopt_slist(CURL *h, CURLoption o, struct curl_slist *v) {
    return curl_easy_setopt(h, o, v);
}
static inline CURLcode kvwarm_curl_setopt_write(CURL *h, kvwarm_curl_write_cb cb) {
    return curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, cb);
}
static inline CURLcode kvwarm_curl_setopt_xferinfo(CURL *h, kvwarm_curl_xferinfo_cb cb) {
    return curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, cb);
}
static inline CURLcode kvwarm_curl_getinfo_long(CURL *h, CURLINFO i, long *out) {
    return curl_easy_getinfo(h, i, out);
}
#endif
