#include "tts_http.h"
#include "../common/util.h"

#include <jansson.h>
#include <stdint.h>
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

static uint32_t le32(const unsigned char *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

int64_t tts_wav_ms(const char *wav, size_t len)
{
    const unsigned char *b = (const unsigned char *)wav;
    if (len < 12 || memcmp(b, "RIFF", 4) != 0 || memcmp(b + 8, "WAVE", 4) != 0)
        return 0;
    uint32_t byte_rate = 0;
    for (size_t off = 12; len - off >= 8;) {
        uint32_t size = le32(b + off + 4);
        size_t avail = len - off - 8;
        if (memcmp(b + off, "data", 4) == 0) {
            /* 0 or 0xffffffff: a streaming server's unknown size */
            uint64_t n = size && size < avail ? size : avail;
            return byte_rate ? (int64_t)(n * 1000 / byte_rate) : 0;
        }
        if (size > avail)
            return 0;
        if (memcmp(b + off, "fmt ", 4) == 0 && size >= 16)
            byte_rate = le32(b + off + 16);
        if (avail - size < (size & 1))
            return 0;
        off += 8 + (size_t)size + (size & 1);
    }
    return 0;
}
