/*
 * The content-addressed cache of the espeak engine's output ([output] cache,
 * job field cache), in <output dir>/.c2a-cache/, used by the engine child.
 *
 * A key is the SHA-256 of everything that makes the file: the voice as
 * resolved, rate, pitch, volume, format, output rate, loudness, captions, marks,
 * tags and the text as spoken (after content extraction). An entry is
 * <key>.json (duration, rate, channels, marks), <key>.vtt / <key>.srt when
 * captions were made, and <key>.<ext>, each put in place by a rename and the
 * audio last: whoever sees the audio sees the rest, and a file is never seen
 * half written. A hit hard-links the entry's files to the job's temporary
 * names, and the worker's commit stage renames them as if they had just been
 * made; a miss adds the job's files the same way once they are complete.
 * Workers and hosts sharing the directory race only to the same content.
 * Entries are evicted least recently used first (a hit touches its .json)
 * when the cache passes its size.
 */
#ifndef C2A_CACHE_H
#define C2A_CACHE_H

#include <stddef.h>

struct synth_work;

struct cache_key {
    char hex[65];
};

void cache_key(const struct synth_work *w, const char *voice, int out_rate, const char *text,
               size_t len, struct cache_key *k);
/* 1 on a hit: the files are at the job's temporary names and w's results are
 * filled (ok, enc, marks, captions_written). 0 on a miss. */
int cache_fetch(struct synth_work *w, const struct cache_key *k, const char *audio_name);
/* After a miss that made the job's files: add them (best effort), then keep
 * the cache under max_mb. */
void cache_store(const struct synth_work *w, const struct cache_key *k, const char *audio_name,
                 int max_mb);

#endif
