/*
 * The commit stage of a worker: a thread that makes finished audio files durable
 * while the engine child synthesizes the next job. The engine leaves each file
 * closed in its temporary name (encode.h); here it is read back for its size and
 * SHA-256 (from the page cache), fsync'd, renamed to its name, and once per
 * batch each directory that got a file is fsync'd (group commit: the files that
 * finished while the last batch was being flushed share one directory flush).
 * Only then does the loop hear of it, so a result is never published, nor a job
 * acked, before its file and directory entry are on disk. With [output] fsync =
 * no both flushes are skipped (the rename stays atomic). With [output]
 * page_cache = drop (the default) a flushed file's pages leave the page cache,
 * unless its request keeps them.
 *
 * The thread does file system calls only: no logging, no allocation, nothing of
 * the loop's; it hands finished requests back through an eventfd that the loop
 * watches, in the order they were submitted. The worker forks engine children
 * while it runs, so it must hold no lock a child could need: it is started
 * after the first fork and never allocates.
 */
#ifndef C2A_COMMIT_H
#define C2A_COMMIT_H

#include "outfile.h"

struct event_base;
struct committer;

struct commit_req {
    struct commit_req *next; /* the committer's */
    char tmp[4096];          /* in: the closed temporary file */
    char path[4096];         /* in: its name; empty to remove tmp only (a job given up) */
    /* in: files that go with it (captions), committed before it; with an empty
     * path, removed with it */
    int n_side;
    char side_tmp[2][4096], side_path[2][4096];
    /* in: the audio, the side files, are read again soon (an upload, the cache):
     * their pages stay (outfile.h, OUTFILE_DROP) */
    int keep_audio, keep_side[2];
    int ok;                  /* out */
    char err[256];           /* out, when not ok */
    struct encoded enc;      /* out: bytes and sha256 */
    void *arg;               /* the caller's: NULL to forget a request whose job is gone */
};

/* Called on the loop for each request, in order; the callee frees it. */
typedef void (*commit_done_fn)(void *ctx, struct commit_req *r);

/* NULL with a reason when the thread cannot start. flags: outfile_commit()'s
 * (OUTFILE_FLUSH, OUTFILE_DROP). */
struct committer *committer_new(struct event_base *base, int flags, commit_done_fn done, void *ctx,
                                char *err, size_t errlen);
/* Hand over a request (malloc'd by the caller); its done() comes later. */
void committer_submit(struct committer *c, struct commit_req *r);
/* Requests handed over and not yet returned. */
unsigned committer_pending(const struct committer *c);
/* Finish what was handed over (the thread completes it; done() is not called:
 * requests still out are freed), stop the thread and free. */
void committer_free(struct committer *c);

#endif
