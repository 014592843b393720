#include "tts_http.h"
#include "../common/util.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *tts_http_request(const char *model, const char *voice, int rate, const char *input)
{
    double speed = rate / 175.0;
    if (speed < 0.25)
        speed = 0.25;
    if (speed > 4.0)
        speed = 4.0;
    json_t *doc = json_pack("{s:s,s:s,s:s,s:s,s:f}", "model", model, "input", input, "voice",
                            voice, "response_format", "wav", "speed", speed);
    char *s = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    return s;
}
