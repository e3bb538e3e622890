/* SPDX-License-Identifier: MIT */
/*
 * test_exports.c - the shared libdmasvc ($LIBDMASVC_SO, set by meson)
 * exports the whole public API (every function of dmasvc.h, each listed
 * by name in libdmasvc.map) and nothing else: internal helpers and the
 * ring code linked into it stay hidden.
 */
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <stdlib.h>

static const char *const api[] = {
	"dmasvc_connect", "dmasvc_disconnect", "dmasvc_last_error", "dmasvc_memory_add",
	"dmasvc_memory_remove", "dmasvc_region_add", "dmasvc_region_remove", "dmasvc_populate",
	"dmasvc_discard", "dmasvc_queue_open", "dmasvc_queue_close", "dmasvc_default_queue",
	"dmasvc_submit_populate", "dmasvc_submit_discard", "dmasvc_reap", "dmasvc_queue_fd",
	"dmasvc_reconnect", "dmasvc_region_populated_bytes", "dmasvc_region_for_each_populated",
	"dmasvc_query", "dmasvc_session_id", "dmasvc_queue_arm", "dmasvc_device_attach",
	"dmasvc_device_attach_ex", "dmasvc_device_detach", "dmasvc_connect_query_only", "dmasvc_query_each",
	"dmasvc_last_service_error", "dmasvc_connect_fd", "dmasvc_queue_batch_begin",
	"dmasvc_queue_batch_end", "dmasvc_set_prefault", "dmasvc_prefault", "dmasvc_resumed",
	"dmasvc_upgrade", "dmasvc_resumable", "dmasvc_control_fd", "dmasvc_set_prefault_threads",
};

static const char *const hidden[] = {
	"cl_call", "cl_bitmap_set", "cl_range_to_bits", "cl_submit_locked", "cl_ring_attach",
	"ring_map", "ring_sq_producer_init", "ring_eventfd_signal", "ring_mem_size",
};

Test(exports, only_the_api)
{
	const char *so = getenv("LIBDMASVC_SO");
	void *h;

	cr_assert_not_null(so, "LIBDMASVC_SO is set by meson");
	h = dlopen(so, RTLD_NOW | RTLD_LOCAL);
	cr_assert_not_null(h, "dlopen: %s", dlerror());
	for (size_t i = 0; i < sizeof(api) / sizeof(api[0]); i++)
		cr_expect_not_null(dlsym(h, api[i]), "%s exported", api[i]);
	for (size_t i = 0; i < sizeof(hidden) / sizeof(hidden[0]); i++)
		cr_expect_null(dlsym(h, hidden[i]), "%s hidden", hidden[i]);
	dlclose(h);
}
