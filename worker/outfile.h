/*
 * The audio files in the output directory, on the file system's side: where a
 * job's file and its temporary file are, how a closed temporary file becomes
 * the file (hash, fsync, rename, the directory's fsync), and the cleaning of
 * temporary files whose writer died. No codec here: this is the worker's part
 * (its commit thread, commit.h); the encoding is the engine's (encode.h).
 */
#ifndef C2A_OUTFILE_H
#define C2A_OUTFILE_H

#include <stddef.h>
#include <stdint.h>

struct job;

struct encoded {
    char path[4096];
    int sample_rate;
    int channels;
    int64_t duration_ms;
    uint64_t bytes;
    char sha256[65];
};

/* Temporary files live in <dir>/.c2a-tmp/<tag>.<name> until their rename; a tag
 * starts with the pid of the process that wants the file. */
#define OUTFILE_TMP_DIR ".c2a-tmp"

/* The file name of a job's audio: its output field, else <id>.<format>. */
void outfile_job_name(const struct job *job, char *out, size_t len);
/* The temporary path of dir/name for a tag (NULL: this process's pid). */
void outfile_tmp_path(char *out, size_t len, const char *dir, const char *tag, const char *name);
/* outfile_commit()'s flags */
enum {
    OUTFILE_FLUSH = 1, /* fsync the file */
    OUTFILE_DROP = 2,  /* then drop its pages from the page cache (with OUTFILE_FLUSH) */
};
/* Make the closed temporary file tmp the file at path: its size and SHA-256 into
 * out->bytes and out->sha256, fsync with OUTFILE_FLUSH, then rename. On failure
 * tmp is removed. The directory entry is durable only after outfile_flush_dir().
 * OUTFILE_DROP: no one here reads the file again, and pages that were just
 * flushed are clean, so they go back to the allocator at once (the next file
 * reuses them) rather than pushing out pages the machine reads. */
int outfile_commit(const char *tmp, const char *path, int flags, struct encoded *out, char *err,
                   size_t errlen);
/* fsync of a directory: its renames are on disk. -1 with errno. */
int outfile_flush_dir(const char *dir);
/* Remove the temporary files of processes that no longer exist (a worker killed
 * while writing). Called by each engine child at its start. */
void outfile_clean_stale(const char *dir);

#endif
