#include "commit.h"
#include "../common/util.h"

#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* outfile_commit() reads back with a 64 KiB buffer on the stack. */
#define COMMIT_STACK (256 * 1024)

struct committer {
    int flags; /* OUTFILE_FLUSH, OUTFILE_DROP */
    commit_done_fn done;
    void *ctx;
    int efd;
    struct event *ev;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;                            /* under mu */
    struct commit_req *in_head, *in_tail; /* under mu: waiting for the thread */
    struct commit_req *out_head, *out_tail; /* under mu: done, for the loop */
    unsigned pending;                    /* the loop's */
};

static void append(struct commit_req **head, struct commit_req **tail, struct commit_req *list)
{
    if (!list)
        return;
    if (*tail)
        (*tail)->next = list;
    else
        *head = list;
    while (list->next)
        list = list->next;
    *tail = list;
}

static size_t dir_len(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? (size_t)(slash - path) : 0;
}

static int file_flags(const struct committer *c, int keep)
{
    return keep ? c->flags & ~OUTFILE_DROP : c->flags;
}

/* One batch: each file committed, then each directory that got one flushed once. */
static void commit_batch(struct committer *c, struct commit_req *batch)
{
    for (struct commit_req *r = batch; r; r = r->next) {
        if (!r->path[0]) {
            for (int i = 0; i < r->n_side; i++)
                unlink(r->side_tmp[i]);
            unlink(r->tmp);
            r->ok = 1;
            continue;
        }
        /* The files that go with the audio first: when the audio is there, so
         * are they. outfile_commit() removes a file it fails on. */
        r->ok = 1;
        for (int i = 0; i < r->n_side; i++) {
            if (!r->ok) {
                unlink(r->side_tmp[i]);
                continue;
            }
            struct encoded scratch;
            r->ok = outfile_commit(r->side_tmp[i], r->side_path[i], file_flags(c, r->keep_side[i]),
                                   &scratch, r->err, sizeof(r->err)) == 0;
        }
        if (!r->ok)
            unlink(r->tmp);
        else
            r->ok = outfile_commit(r->tmp, r->path, file_flags(c, r->keep_audio), &r->enc, r->err,
                                   sizeof(r->err)) == 0;
    }
    if (!(c->flags & OUTFILE_FLUSH))
        return;
    for (struct commit_req *r = batch; r; r = r->next) {
        if (!r->ok || !r->path[0])
            continue;
        size_t n = dir_len(r->path);
        int seen = 0;
        for (struct commit_req *q = batch; q != r && !seen; q = q->next)
            seen = q->ok && q->path[0] && dir_len(q->path) == n && !memcmp(q->path, r->path, n);
        if (seen)
            continue;
        char dir[sizeof(r->path)];
        memcpy(dir, r->path, n);
        dir[n] = '\0';
        if (outfile_flush_dir(n ? dir : "/") == 0)
            continue;
        int e = errno;
        /* The files are in place but not known to be on disk: their jobs fail
         * (and run again). */
        for (struct commit_req *q = r; q; q = q->next) {
            if (q->ok && q->path[0] && dir_len(q->path) == n && !memcmp(q->path, r->path, n)) {
                q->ok = 0;
                snprintf(q->err, sizeof(q->err), "fsync %.200s: %s", dir, strerror(e));
            }
        }
    }
}

static void *run(void *arg)
{
    struct committer *c = arg;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (!c->in_head && !c->stop)
            pthread_cond_wait(&c->cv, &c->mu);
        if (!c->in_head)
            break;
        struct commit_req *batch = c->in_head;
        c->in_head = c->in_tail = NULL;
        pthread_mutex_unlock(&c->mu);
        commit_batch(c, batch);
        pthread_mutex_lock(&c->mu);
        append(&c->out_head, &c->out_tail, batch);
        uint64_t one = 1;
        if (write(c->efd, &one, sizeof(one)) < 0) {
            /* The counter cannot overflow here: the loop reads it. */
        }
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

static void on_done(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct committer *c = arg;
    uint64_t n;
    if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
        return;
    pthread_mutex_lock(&c->mu);
    struct commit_req *list = c->out_head;
    c->out_head = c->out_tail = NULL;
    pthread_mutex_unlock(&c->mu);
    while (list) {
        struct commit_req *r = list;
        list = r->next;
        r->next = NULL;
        c->pending--;
        c->done(c->ctx, r);
    }
}

struct committer *committer_new(struct event_base *base, int flags, commit_done_fn done, void *ctx,
                                char *err, size_t errlen)
{
    struct committer *c = xcalloc(1, sizeof(*c));
    c->flags = flags;
    c->done = done;
    c->ctx = ctx;
    c->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (c->efd < 0) {
        snprintf(err, errlen, "eventfd: %s", strerror(errno));
        free(c);
        return NULL;
    }
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    c->ev = event_new(base, c->efd, EV_READ | EV_PERSIST, on_done, c);
    event_add(c->ev, NULL);
    /* Signals are the loop's: the thread takes none. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, COMMIT_STACK);
    int rc = pthread_create(&c->thread, &attr, run, c);
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        snprintf(err, errlen, "commit thread: %s", strerror(rc));
        event_free(c->ev);
        close(c->efd);
        pthread_mutex_destroy(&c->mu);
        pthread_cond_destroy(&c->cv);
        free(c);
        return NULL;
    }
    return c;
}

void committer_submit(struct committer *c, struct commit_req *r)
{
    r->next = NULL;
    c->pending++;
    pthread_mutex_lock(&c->mu);
    append(&c->in_head, &c->in_tail, r);
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

unsigned committer_pending(const struct committer *c)
{
    return c->pending;
}

static void free_list(struct commit_req *r)
{
    while (r) {
        struct commit_req *next = r->next;
        free(r);
        r = next;
    }
}

void committer_free(struct committer *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    c->stop = 1;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    free_list(c->in_head);
    free_list(c->out_head);
    event_free(c->ev);
    close(c->efd);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c);
}
