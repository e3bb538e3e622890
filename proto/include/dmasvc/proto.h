/* SPDX-License-Identifier: MIT */
/*
 * proto.h - dmasvc control protocol: wire types only.
 *
 * Shared by the service and every client (libdmasvc, the QEMU shim,
 * dmasvcctl).  docs/protocol.md is the prose version of this file; when the
 * two disagree this file is right and the doc is a bug.
 *
 * Transport: a Unix SOCK_SEQPACKET socket; one message per packet, at most
 * DMASVC_MSG_MAX bytes.  File descriptors travel as SCM_RIGHTS ancillary data
 * on the packet that needs them, and nowhere else.
 *
 * Every message starts with struct dmasvc_msg_hdr.  The client sends
 * requests; the service answers each request with exactly one reply carrying
 * the same msg_id, in order.  A reply is:
 *
 *     struct dmasvc_msg_hdr   (flags has DMASVC_MSG_REPLY, error = 0 or errno)
 *     struct dmasvc_<cmd>_reply  (only when error == 0 and the command has one)
 *     char text[]             (NUL-terminated human-readable message; may be
 *                              just "\0"; always present, at most
 *                              DMASVC_TEXT_MAX bytes including the NUL)
 *
 * Rules a receiver enforces (the service treats every client as hostile):
 *   - hdr.size equals the packet length and lies in
 *     [sizeof(hdr) + min_size(cmd), DMASVC_MSG_MAX];
 *   - a request body shorter than its min_size is -EINVAL; a body longer than
 *     the struct this side knows is accepted only if the extra bytes are all
 *     zero, else -E2BIG (iommufd's extensible-struct rule);
 *   - unknown cmd -> -EOPNOTSUPP; unknown flag bits or a non-zero __reserved
 *     field -> -EINVAL;
 *   - an fd on a command that takes none, or a missing fd, -> -EBADF; every
 *     received fd is closed on every error path;
 *   - the first request must be HELLO with a matching major version, else
 *     the reply is -EPROTO and the service disconnects.
 * Errors in replies are positive errno values (0 = success); the client API
 * turns them into -errno.
 *
 * Numbers in this file never change meaning; retired commands leave gaps.
 * All integers are little-endian host order (the protocol is host-local).
 */
#ifndef DMASVC_PROTO_H
#define DMASVC_PROTO_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>

#include "dmasvc/records.h"

#define DMASVC_PROTO_MAJOR 1
/* 1: DEVICE_ATTACH reply carries iommufd_devid.
 * 2: session tokens: HELLO may resume a kept session (docs/restart.md);
 *    the UPGRADE admin command; SQE flag DMASVC_SQE_REPLAY. */
#define DMASVC_PROTO_MINOR 2

/* DMASVC_MSG_MAX (records.h): bytes in one packet, header included */
#define DMASVC_TEXT_MAX 256        /* reply text, NUL included */
#define DMASVC_DEFAULT_SOCKET "/run/dmasvc/dmasvc.sock"

/* Commands.  Explicit numbers; DMASVC_CMD_MAX is one past the last. */
enum dmasvc_cmd {
	DMASVC_CMD_HELLO = 1,          /* version handshake; must be first */
	DMASVC_CMD_MEMORY_ADD = 2,     /* + 1 fd: memfd or hugetlbfs file */
	DMASVC_CMD_MEMORY_REMOVE = 3,
	DMASVC_CMD_REGION_ADD = 4,
	DMASVC_CMD_REGION_REMOVE = 5,
	DMASVC_CMD_RING_SETUP = 6,     /* reply carries 3 fds */
	DMASVC_CMD_DEVICE_ATTACH = 7,  /* + 1 fd: VFIO cdev */
	DMASVC_CMD_DEVICE_DETACH = 8,
	DMASVC_CMD_QUERY = 9,          /* stats / regions / audit records */
	DMASVC_CMD_BYE = 10,           /* orderly close: unmap all, then reply */
	DMASVC_CMD_UPGRADE = 11,       /* admin: re-exec the service, keeping sessions */
	DMASVC_CMD_MAX
};

/* Common header of every message, request or reply. */
struct dmasvc_msg_hdr {
	uint32_t size;    /* bytes of the whole message, this header included */
	uint16_t cmd;     /* enum dmasvc_cmd; a reply repeats the request's */
	uint16_t flags;   /* DMASVC_MSG_* */
#define DMASVC_MSG_REPLY (1u << 0) /* set on replies, clear on requests */
	uint32_t msg_id;  /* chosen by the client; echoed in the reply */
	uint32_t error;   /* replies: 0 or a positive errno; requests: 0 */
};
static_assert(sizeof(struct dmasvc_msg_hdr) == 16, "hdr size");

/* ---- HELLO ------------------------------------------------------------ */

#define DMASVC_TOKEN_LEN 16

struct dmasvc_hello {
	uint16_t major;       /* DMASVC_PROTO_MAJOR; a mismatch is -EPROTO */
	uint16_t minor;       /* DMASVC_PROTO_MINOR the client speaks */
	uint32_t flags;       /* DMASVC_HELLO_*; other bits -EINVAL */
#define DMASVC_HELLO_RESUME (1u << 0) /* resume the kept session holding @token */
	uint64_t client_tag;  /* free-form id for logs (e.g. the VMM's pid) */
	/* minor >= 2 (a 16-byte HELLO reads as all-zero here): the token of
	 * the session to resume, with DMASVC_HELLO_RESUME; else all-zero. */
	uint8_t token[DMASVC_TOKEN_LEN];
};
static_assert(sizeof(struct dmasvc_hello) == 32, "hello size");
#define DMASVC_HELLO_V1_SIZE 16 /* minor < 2 clients send this much */

struct dmasvc_hello_reply {
	uint16_t major;
	uint16_t minor;           /* min(client minor, service minor) */
	uint32_t session_id;      /* for logs and dmasvcctl */
	uint32_t max_sq_entries;  /* RING_SETUP bounds (powers of two) */
	uint32_t max_cq_entries;
	uint64_t max_areas;       /* area budget of the session's space */
	uint64_t __reserved;      /* 0 */
	/* minor >= 2 only (a minor < 2 client gets the first 32 bytes): */
	uint32_t flags;           /* DMASVC_HELLO_RESUMED */
#define DMASVC_HELLO_RESUMED (1u << 0) /* this connection resumed a kept session */
	uint32_t __reserved2;     /* 0 */
	/* The secret that resumes this session after a service restart
	 * (single use: every resume issues a new one); all-zero when the
	 * session cannot be resumed (type1, the software model). */
	uint8_t token[DMASVC_TOKEN_LEN];
};
static_assert(sizeof(struct dmasvc_hello_reply) == 56, "hello reply size");
#define DMASVC_HELLO_REPLY_V1_SIZE 32

/* ---- MEMORY_ADD / MEMORY_REMOVE --------------------------------------- */

/*
 * MEMORY_ADD: one fd in SCM_RIGHTS.  The service requires a memfd (with
 * F_SEAL_SHRINK set, so it cannot shrink under a pinned mapping) or a
 * hugetlbfs file, of at least @size bytes, maps it MAP_SHARED once and keeps
 * the fd.  @size must be a multiple of the page size of the fd.
 */
struct dmasvc_memory_add {
	uint64_t size;
	uint32_t flags;       /* DMASVC_MEMORY_* (records.h) */
	uint32_t __reserved;  /* 0 */
};
static_assert(sizeof(struct dmasvc_memory_add) == 16, "memory_add size");

struct dmasvc_memory_add_reply {
	uint32_t mem_id;
	uint32_t flags;       /* DMASVC_MEMORY_ADDED_* (0 from services before them) */
};

/*
 * The residency rule of populates (docs/design.md, "Who allocates guest
 * memory") counts a page of this memory the VMM allocated with fallocate()
 * (allocated and charged, not yet written) as in memory: the service's pin
 * through its guarded mapping zeroes it.  Without the flag such a page is a
 * hole to the service (mincore() reports written pages only) and the VMM
 * faults its populates in (MADV_POPULATE_WRITE).  Fixed for the memory's
 * life.
 */
#define DMASVC_MEMORY_ADDED_FALLOC (1u << 0)

/* MEMORY_REMOVE: -EBUSY while a region uses the memory. */
struct dmasvc_memory_remove {
	uint32_t mem_id;
	uint32_t __reserved;
};

/* ---- REGION_ADD / REGION_REMOVE --------------------------------------- */

/*
 * REGION_ADD: a window [mem_offset, mem_offset + size) of memory @mem_id,
 * device-visible at [iova, iova + size), tracked at @granule (a power of two
 * >= 4096; iova, size and mem_offset granule-aligned).  Starts fully
 * discarded.  Refused with -ENOSPC and a message naming the numbers and the
 * smallest granule that fits when size / granule areas exceed the space's
 * remaining budget; -EEXIST when the IOVA range overlaps another region.
 */
struct dmasvc_region_add {
	uint32_t mem_id;
	uint32_t flags;       /* DMASVC_REGION_* (records.h) */
	uint64_t mem_offset;
	uint64_t size;
	uint64_t iova;
	uint64_t granule;
};
static_assert(sizeof(struct dmasvc_region_add) == 40, "region_add size");

struct dmasvc_region_add_reply {
	uint32_t region_id;   /* names the region in SQEs */
	uint32_t __reserved;
};

/* REGION_REMOVE: discards whatever is populated (coalesced unmaps), then forgets. */
struct dmasvc_region_remove {
	uint32_t region_id;
	uint32_t __reserved;
};

/* ---- RING_SETUP --------------------------------------------------------- */

/*
 * RING_SETUP: the service creates a ring (ring/include/dmasvc/ring.h) with
 * the given entry counts and returns, in SCM_RIGHTS order, the sealed ring
 * memfd, the doorbell eventfd (client writes: SQ has entries) and the
 * completion eventfd (service writes: CQ has entries).  Up to
 * DMASVC_MAX_RINGS per session: one per producer thread.
 */
struct dmasvc_ring_setup {
	uint32_t sq_entries;  /* power of two, <= hello_reply.max_sq_entries */
	uint32_t cq_entries;  /* power of two, >= sq_entries, <= max_cq_entries */
	uint32_t flags;       /* must be 0 */
	uint32_t __reserved;
};
static_assert(sizeof(struct dmasvc_ring_setup) == 16, "ring_setup size");

struct dmasvc_ring_setup_reply {
	uint32_t ring_id;
	uint32_t __reserved;
	uint64_t ring_size;   /* bytes to mmap from the ring memfd */
};

/* ---- DEVICE_ATTACH / DEVICE_DETACH ------------------------------------ */

/* DEVICE_ATTACH: one VFIO cdev fd; -EOPNOTSUPP on the software model. */
struct dmasvc_device_attach {
	uint32_t flags;       /* must be 0 */
	uint32_t __reserved;
};
struct dmasvc_device_attach_reply {
	uint32_t dev_id;
	/*
	 * Minor 1: the kernel's id of the device in the session's iommufd
	 * context (VFIO_DEVICE_BIND_IOMMUFD's out_devid), which
	 * VFIO_DEVICE_GET_PCI_HOT_RESET_INFO reports for the devices a hot
	 * reset affects; 0 on a backend without one (type1).  Minor-0
	 * services send 0 here (the field was reserved).
	 */
	uint32_t iommufd_devid;
};
struct dmasvc_device_detach {
	uint32_t dev_id;
	uint32_t __reserved;
};

/* ---- QUERY ---------------------------------------------------------------- */

/*
 * QUERY: read-only views for dmasvcctl and for clients' own checks.  A reply
 * holds up to as many records as fit in one packet and a cursor to resume
 * from (0 when done).  DMASVC_QUERY_F_ALL_SESSIONS (service-wide view) is
 * honoured only for peers on the admin allow-list; otherwise -EPERM.
 */

struct dmasvc_query {
	uint32_t what;        /* enum dmasvc_query_what (records.h) */
	uint32_t flags;       /* DMASVC_QUERY_F_* (records.h) */
	uint64_t cursor;      /* 0 to start; reply.next_cursor to go on */
	uint32_t region_id;   /* AUDIT: the region to audit */
	union {
		uint32_t __reserved; /* 0, except: */
		uint32_t session_id; /* AUDIT with F_ALL_SESSIONS: the session
					owning region_id (0 = the caller's) */
	};
};
static_assert(sizeof(struct dmasvc_query) == 24, "query size");

struct dmasvc_query_reply {
	uint32_t what;
	uint32_t count;       /* records that follow */
	uint32_t record_size; /* bytes per record (records may grow) */
	uint32_t __reserved;
	uint64_t next_cursor; /* 0 when this was the last page */
	/* followed by count * record_size bytes (records.h), then the text */
};
static_assert(sizeof(struct dmasvc_query_reply) == 24, "query reply size");

/* ---- BYE ---------------------------------------------------------------- */
/* BYE: no body; the service removes every mapping of the session, replies, closes. */

/* Minimum request body per command (offsetofend of the last mandatory field). */
#define DMASVC_OFFSETOFEND(type, member) \
	(offsetof(type, member) + sizeof(((type *)0)->member))

#endif /* DMASVC_PROTO_H */
