/*
 * Captions beside the audio: WebVTT and SRT built from the engine's timings, a
 * cue per sentence (its start to the next one's), with each word's start as a
 * WebVTT timestamp tag where the engine gives word timings. Pure functions: the
 * engine child calls them with espeak-ng's events; the unit tests call them too.
 */
#ifndef C2A_CAPTIONS_H
#define C2A_CAPTIONS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

enum { CAPTIONS_VTT = 1, CAPTIONS_SRT = 2 };

/* A word or a sentence starting at character pos (not byte) of the text, at
 * ms into the audio. */
struct cap_event {
    int sentence;
    int64_t pos;
    int64_t ms;
};

/* The captions of text (UTF-8, len bytes) for events in the order the engine
 * gave them, up to duration_ms; kind is CAPTIONS_VTT or CAPTIONS_SRT. Every
 * character of the text is in exactly one cue (whitespace collapsed), so the
 * cues joined are the text. Returns a malloc'd string. */
char *captions_build(const char *text, size_t len, const struct cap_event *ev, size_t n,
                     int64_t duration_ms, int kind);

/* Write the captions of kinds (CAPTIONS_*) for the audio audio_name, each to
 * its temporary name in dir for tag (outfile.h), which the commit stage
 * renames with the audio; *written gets the kinds written. -1 with err, and
 * none of them left, when one cannot be written. */
int captions_write(const char *dir, const char *tag, const char *audio_name, int kinds,
                   const char *text, size_t len, const struct cap_event *ev, size_t n,
                   int64_t duration_ms, int *written, char *err, size_t errlen);

/* Remove the temporary files of kinds that captions_write() left. */
void captions_remove_tmp(const char *dir, const char *tag, const char *audio_name, int kinds);

/* The captions' file name for an audio file name: its extension replaced (the
 * worker's side needs it as well as the engine's: inline here). */
static inline void captions_name(const char *audio_name, int kind, char *out, size_t len)
{
    const char *dot = strrchr(audio_name, '.');
    int base = dot && dot != audio_name ? (int)(dot - audio_name) : (int)strlen(audio_name);
    snprintf(out, len, "%.*s.%s", base, audio_name, kind == CAPTIONS_VTT ? "vtt" : "srt");
}

#endif
