/* SPDX-License-Identifier: MIT */
/*
 * records.h - what the public API (dmasvc.h) and the wire share: the flags
 * a client passes, the QUERY kinds and the QUERY records the service
 * returns.  Installed with dmasvc.h, which includes it; the wire messages
 * themselves (proto.h) are not part of the API and are not installed.
 *
 * Records follow the extensible-struct rule: fields are only ever appended,
 * a record's size travels with it (dmasvc_query_reply.record_size), and a
 * reader copies min(its size, the sender's) and zero-fills the rest, so a
 * newer or older service and client read each other's records.
 */
#ifndef DMASVC_RECORDS_H
#define DMASVC_RECORDS_H

#include <stdint.h>

/* Bytes in one control packet: no record or request body is larger. */
#define DMASVC_MSG_MAX 4096

/* dmasvc_memory_add() / MEMORY_ADD flags. */
#define DMASVC_MEMORY_READONLY (1u << 0) /* map PROT_READ; regions must be read-only */

/* dmasvc_region_desc.flags / REGION_ADD flags. */
#define DMASVC_REGION_READONLY (1u << 0) /* device may only read */

/* Rings (queues) per session. */
#define DMASVC_MAX_RINGS 64

/* QUERY: what to read (dmasvc_query(), dmasvc_query_each()). */
enum dmasvc_query_what {
	DMASVC_QUERY_STATUS = 1,   /* one dmasvc_stat_service record */
	DMASVC_QUERY_SESSIONS = 2, /* dmasvc_stat_session records */
	DMASVC_QUERY_REGIONS = 3,  /* dmasvc_stat_region records */
	DMASVC_QUERY_AUDIT = 4,    /* dmasvc_audit_extent records: what the backend holds */
	DMASVC_QUERY_MAX
};

/*
 * dmasvc_stat_service.area_rule, dmasvc_stat_session.area_rule: how the
 * service lays areas over a space's populated granules (docs/design.md,
 * "Areas over runs").
 */
#define DMASVC_AREA_RULE_UNKNOWN 0 /* a service older than the field (zero-filled) */
#define DMASVC_AREA_RULE_GRANULE 1 /* one area per granule (the default) */
#define DMASVC_AREA_RULE_RUN 2     /* an area per run of granules; a discard cuts areas */

/* QUERY flags: the service-wide view (admin peers only, else -EPERM). */
#define DMASVC_QUERY_F_ALL_SESSIONS (1u << 0)

struct dmasvc_stat_service {
	uint64_t uptime_ns;
	uint32_t sessions;
	uint32_t workers;
	char backend[16];         /* "soft", "iommufd", "type1"; NUL-padded */
	uint64_t events;          /* SQEs completed, all sessions since start */
	uint64_t events_failed;
	uint64_t map_calls;       /* backend map ops issued */
	uint64_t unmap_calls;
	uint64_t pinned_bytes;    /* bytes the backend holds pinned now */
	uint64_t vmlck_bytes;     /* service VmLck (model) or VmPin (kernel) */
	uint64_t latency_p50_ns;  /* event post -> completion, recent window */
	uint64_t latency_p99_ns;
	uint64_t areas;           /* areas mapped now, all spaces (mapped granules:
				   with --areas run an upper bound) */
	uint64_t max_areas;       /* sum of budgets (UINT64_MAX = unlimited) */
	/*
	 * Appended in 0.2: the same latency since the service started, every
	 * event of every session (freed ones too), never reset; zero for a
	 * peer that is not an admin.  latency_log2[k] counts events whose
	 * latency v (whole ns) has bit length k: [0] v = 0, [k] 2^(k-1) <= v
	 * < 2^k for 1 <= k < DMASVC_LATENCY_LOG2 - 1, and the last entry
	 * every v >= 2^(DMASVC_LATENCY_LOG2 - 2).  Not cumulative; the
	 * entries sum to latency_count.
	 */
	uint64_t latency_count;   /* events timed since start */
	uint64_t latency_sum_ns;  /* their latencies summed */
#define DMASVC_LATENCY_LOG2 40
	uint64_t latency_log2[DMASVC_LATENCY_LOG2];
	/*
	 * Appended at protocol minor 2 (docs/restart.md): granules that replay
	 * events (DMASVC_SQE_REPLAY) of resumed sessions had to map / unmap,
	 * all sessions since start: repairs of a state the client and the
	 * kept kernel state disagreed on; 0 after a consistent resume.
	 */
	uint64_t resume_repair_maps;
	uint64_t resume_repair_unmaps;
	/* Appended after the minor-2 fields (an older service: 0, unknown):
	 * the rule new spaces get (dmasvc --areas). */
	uint32_t area_rule;       /* DMASVC_AREA_RULE_* */
	uint32_t __reserved;
};

struct dmasvc_stat_session {
	uint32_t session_id;
	uint32_t pid;             /* SO_PEERCRED */
	uint32_t uid;
	uint32_t regions;
	uint32_t rings;
	uint32_t devices;
	uint64_t client_tag;
	uint64_t events;
	uint64_t events_failed;
	uint64_t map_calls;
	uint64_t unmap_calls;
	uint64_t areas;           /* areas mapped in this session's space (mapped
				   granules: with --areas run an upper bound) */
	uint64_t max_areas;
	uint64_t reserved_areas;  /* worst case reserved by its regions */
	uint64_t latency_p50_ns;
	uint64_t latency_p99_ns;
	uint64_t populated_bytes;     /* mapped bytes summed over its regions: what the cap counts */
	uint64_t max_populated_bytes; /* its populated-bytes cap (--max-populated-mib, --uid-caps) */
	/* Appended at protocol minor 2: this session's repairs (as in
	 * dmasvc_stat_service). */
	uint64_t resume_repair_maps;
	uint64_t resume_repair_unmaps;
	/* Appended after the minor-2 fields (an older service: 0, unknown):
	 * the rule of the session's space, which may differ
	 * from the service's (a kept space adopted after a restart keeps the
	 * rule it was made with); a session without a space yet: the rule its
	 * space will get. */
	uint32_t area_rule;       /* DMASVC_AREA_RULE_* */
	uint32_t __reserved;
};

struct dmasvc_stat_region {
	uint32_t session_id;
	uint32_t region_id;
	uint32_t mem_id;
	uint32_t flags;
	uint64_t iova;
	uint64_t size;
	uint64_t granule;
	uint64_t populated_bytes; /* the service's per-granule state */
	uint64_t mapped_bytes;    /* bytes in areas the backend accepted */
	uint64_t pinned_bytes;    /* bytes the backend holds pinned for it */
};

struct dmasvc_audit_extent {
	uint64_t iova;
	uint64_t length;
	uint32_t state;           /* DMASVC_AUDIT_* */
#define DMASVC_AUDIT_OK 0            /* held by the backend and populated */
#define DMASVC_AUDIT_MISSING 1       /* populated, backend does not hold it */
#define DMASVC_AUDIT_STRAY 2         /* backend holds it, not populated */
	uint32_t __reserved;
};

#endif /* DMASVC_RECORDS_H */
