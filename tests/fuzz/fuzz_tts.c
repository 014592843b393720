/*
 * libFuzzer target: tts_wav_ms(), the header of a TTS server's WAV answer as
 * the worker reads it for progress messages (the answer itself is decoded only
 * in the engine child). Input: the answer. The length it gives can never pass
 * what the bytes after the header could hold at the lowest byte rate (1 byte a
 * second): a broken promise aborts.
 */
#include "../../worker/tts_http.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* a copy of exactly size bytes, so that ASan sees any read past it */
    char *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    for (size_t i = 0; i < size; i++)
        copy[i] = (char)data[i];
    int64_t ms = tts_wav_ms(copy, size);
    if (ms < 0 || (uint64_t)ms > (uint64_t)size * 1000)
        abort();
    free(copy);
    return 0;
}
