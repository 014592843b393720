/*
 * libFuzzer target: the configuration parser, config_parse() on the bytes of a
 * file (config_load() reads the file and calls it). A configuration that
 * parses is then shown key by key, as -t -v and /status do, and checked
 * against what config.h promises; a broken promise aborts.
 */
#include "../../common/config.h"
#include "../../common/log.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define NAME "fuzz.conf"

struct reports {
    int n;
};

/* Every message names the file and a line: "fuzz.conf:12: key: why". */
static void report(void *ctx, const char *msg)
{
    struct reports *r = ctx;
    if (strncmp(msg, NAME ":", sizeof(NAME)) != 0 || strlen(msg) <= sizeof(NAME))
        abort();
    r->n++;
}

static void check(const struct config *cfg)
{
    struct control_addr a;
    const char *why;
    if (config_parse_addr(cfg->control, &a, &why) < 0)
        abort();
    if (cfg->n_urls < 1 || cfg->n_urls > CONFIG_MAX_URLS || cfg->n_queues < 1 ||
        cfg->n_queues > CONFIG_MAX_QUEUES)
        abort();
    if (cfg->count < 1 || cfg->count > CONFIG_MAX_WORKERS)
        abort();
    for (int i = 0; i < cfg->n_urls; i++)
        free(config_mask_url(cfg->urls[i]));
    for (size_t i = 0; i < config_key_count(); i++) {
        char *v = config_value_string(cfg, config_key_at(i));
        if (!v)
            abort();
        free(v);
    }
    if (strcmp(cfg->path, NAME) != 0)
        abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    log_open("-", LL_ERROR);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Exactly size bytes on the heap, so ASan sees any read past the text. */
    char *text = malloc(size ? size : 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    struct reports r = {0};
    struct config *cfg = config_parse(NAME, text, size, report, &r);
    if (cfg) {
        if (r.n)
            abort(); /* problems were reported, yet a configuration came back */
        check(cfg);
        config_free(cfg);
    } else if (!r.n) {
        abort(); /* refused without saying why */
    }
    free(text);
    return 0;
}
