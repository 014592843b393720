/*
 * Framed, typed messages between a worker and its engine child (the imsg idea of
 * OpenBSD's privilege-separated daemons, much reduced): a header of two 32-bit
 * words in host order, the message type and the payload length, then the
 * payload. A payload is a sequence of fields written and read in the same order:
 * 32- and 64-bit integers and length-prefixed byte strings.
 *
 * The reader checks every length against what is left: a short or malformed
 * payload is an error, never a read past the end. The worker treats a bad frame
 * from its child as a broken child.
 */
#ifndef C2A_FRAME_H
#define C2A_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define FRAME_HDR 8
/* A frame larger than this is refused: the biggest legitimate payload is the
 * http engine's WAV answers, bounded by max_duration at 48 kHz stereo. */
#define FRAME_MAX (512u << 20)

struct wbuf {
    char *data;
    size_t len, cap;
};

/* Start a frame of this type in w (emptied first); frame_end() writes the length. */
void frame_begin(struct wbuf *w, uint32_t type);
void frame_end(struct wbuf *w);
void wbuf_u32(struct wbuf *w, uint32_t v);
void wbuf_i64(struct wbuf *w, int64_t v);
void wbuf_bytes(struct wbuf *w, const void *p, size_t len);
/* A C string (NULL is written as empty). */
void wbuf_str(struct wbuf *w, const char *s);
void wbuf_free(struct wbuf *w);

/* Read the header at p (FRAME_HDR bytes). */
void frame_header(const void *p, uint32_t *type, uint32_t *len);

struct rbuf {
    const char *p;
    size_t left;
    int bad; /* set by the first read that did not fit; later reads return 0s */
};

uint32_t rbuf_u32(struct rbuf *r);
int64_t rbuf_i64(struct rbuf *r);
/* A byte string: points into the payload (not terminated); *len its length. */
const char *rbuf_bytes(struct rbuf *r, size_t *len);
/* A string copied into dst (at most size-1 bytes, terminated); a longer one or
 * one with a NUL inside makes the buffer bad. */
void rbuf_strcpy(struct rbuf *r, char *dst, size_t size);
/* A string in a new malloc'd, terminated copy; NULL when empty and null_if_empty. */
char *rbuf_strdup(struct rbuf *r, int null_if_empty);

#endif
