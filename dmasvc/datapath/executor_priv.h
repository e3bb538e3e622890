/* SPDX-License-Identifier: MIT */
/*
 * executor_priv.h - executor threads for big bursts, so one session's long
 * pinning does not stall the event loop and the other sessions.
 * Do not include from outside dmasvc/.
 *
 * Vocabulary: each session gets at most one executor thread (created on its
 * first big burst) and has at most one burst in flight (s->busy).  A
 * finished burst's session id goes on the "done" queue and the queue's
 * eventfd is signalled; the event loop reaps the ids and finishes the
 * bursts (posts CQEs) on its own thread.  Map jobs of every executor share
 * the one worker pool.
 *
 * Threading: executor_submit, executor_reap, executor_wait and executor_thread_stop are called by
 * the event loop only; the executor thread touches s->burst, the session's
 * space and the regions named by the burst, nothing else.
 */
#ifndef DMASVC_EXECUTOR_PRIV_H
#define DMASVC_EXECUTOR_PRIV_H

#include <stdint.h>

#include "service_priv.h"
#include "session_priv.h"


/* executor_queue_create: the done queue and its eventfd.  Returns 0 or -errno. */
int executor_queue_create(struct executor_queue **out);

/* executor_queue_destroy: free it (no executor may be running).  NULL is a no-op. */
void executor_queue_destroy(struct executor_queue *q);

/* executor_queue_fd: the eventfd the loop polls (readable when bursts finished). */
int executor_queue_fd(const struct executor_queue *q);

/*
 * executor_submit: mark @s busy and hand s->burst to its executor (started on
 * first use).  Returns 0, or -errno if the thread could not be started
 * (then @s is not busy: run the burst inline).
 */
int executor_submit(struct dsvc *d, struct dsvc_session *s);

/*
 * executor_reap: take up to @max finished session ids into @ids (the sessions are
 * still marked busy; the caller finishes them).  Returns the count.
 */
unsigned int executor_reap(struct dsvc *d, uint32_t *ids, unsigned int max);

/* executor_wait: block until some burst finished (the queue's eventfd is readable). */
void executor_wait(struct dsvc *d);

/* executor_thread_stop: stop and join @s's executor (@s must not be busy).  Never fails. */
void executor_thread_stop(struct dsvc_session *s);

#endif /* DMASVC_EXECUTOR_PRIV_H */
