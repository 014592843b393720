/*
 * c2a-noaudio.so: what an engine child loads, under the soname libpcaudio.so.0,
 * before c2a-engine.so. espeak-ng needs libpcaudio only to play sound
 * (ENOUTPUT_MODE_SPEAK_AUDIO), which we never ask for; the real one pulls in
 * PulseAudio, ALSA, X11, libsystemd and libgcrypt, some 3 MB of resident memory
 * per engine child and a slower start. The dynamic loader takes an object
 * already loaded with the soname a library needs, so espeak-ng gets these
 * functions, which play nothing. Without this object the child loads the real
 * libpcaudio: nothing else changes.
 */
#include <stddef.h>
#include <stdint.h>

struct audio_object;

struct audio_object *create_audio_device_object(const char *device, const char *application,
                                                const char *description);
int audio_object_open(struct audio_object *o, int format, uint32_t rate, uint8_t channels);
void audio_object_close(struct audio_object *o);
void audio_object_destroy(struct audio_object *o);
int audio_object_write(struct audio_object *o, const void *data, size_t bytes);
int audio_object_drain(struct audio_object *o);
int audio_object_flush(struct audio_object *o);
const char *audio_object_strerror(struct audio_object *o, int error);

struct audio_object *create_audio_device_object(const char *device, const char *application,
                                                const char *description)
{
    (void)device;
    (void)application;
    (void)description;
    return NULL;
}

int audio_object_open(struct audio_object *o, int format, uint32_t rate, uint8_t channels)
{
    (void)o;
    (void)format;
    (void)rate;
    (void)channels;
    return -1;
}

void audio_object_close(struct audio_object *o)
{
    (void)o;
}

void audio_object_destroy(struct audio_object *o)
{
    (void)o;
}

int audio_object_write(struct audio_object *o, const void *data, size_t bytes)
{
    (void)o;
    (void)data;
    (void)bytes;
    return -1;
}

int audio_object_drain(struct audio_object *o)
{
    (void)o;
    return -1;
}

int audio_object_flush(struct audio_object *o)
{
    (void)o;
    return -1;
}

const char *audio_object_strerror(struct audio_object *o, int error)
{
    (void)o;
    (void)error;
    return "c2a-worker plays no sound";
}
