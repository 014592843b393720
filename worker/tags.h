/*
 * The language of a job's audio as each format's own tag, added to a file
 * libsndfile has written and closed (libsndfile has no language string): ILNG
 * in a WAV's LIST INFO chunk, a LANGUAGE= Vorbis comment in FLAC, Ogg Vorbis
 * and Opus (the Ogg header pages re-paginated, later pages renumbered when
 * their count changes), an ID3v2 TLAN frame in MP3 (a new ID3v2 tag carries
 * the ID3v1 tag's fields too: readers that find one ignore the other). The
 * engine child calls it from encoder_close() (encode.h); nothing here keeps
 * state between calls.
 */
#ifndef C2A_TAGS_H
#define C2A_TAGS_H

#include <stddef.h>
#include <stdint.h>

/* Longest language tag accepted: RFC 5646 asks that tags of up to 35
 * characters be supported. */
#define TAGS_LANGUAGE_MAX 35

/* 0 when lang is a tag language_tag_ok() (util.h) takes; else -1 with the
 * reason in err. */
int tags_check_language(const char *lang, char *err, size_t errlen);

/* Add the language tag lang (as tags_check_language() accepts; an existing
 * language tag is replaced) to the closed audio file of the given format
 * ("wav", "flac", "ogg", "opus", "mp3") open on fd (read/write), *len bytes
 * long; *len is updated. 0; -2 with a reason in err when the file (or lang)
 * is refused and left as it was (retrying cannot help); -1 when a read or
 * write failed (a full disk, an I/O error: the file may be half changed).
 *
 * Everything is checked before the first write: a file it does not understand
 * (malformed, truncated, another codec, metadata over 1 MB) is refused and left
 * as it was. So is a file a full disk cannot grow (it is extended before
 * anything moves, and cut back). Any other failing read or write leaves it
 * half changed: the caller must throw it away. The audio is moved, never
 * changed, but for the sequence numbers and checksums of Ogg pages. Memory
 * stays bounded (the metadata, a few MB at most, and a 64 kB block) whatever
 * the file's length. */
int tags_add_language(int fd, uint64_t *len, const char *format, const char *lang, char *err,
                      size_t errlen);

#endif
