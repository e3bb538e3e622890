// SPDX-License-Identifier: MIT
/*
 * edu.c - QEMU edu device over a VFIO device fd (see edu.h): region
 * lookup, bus mastering, 32-bit BAR0 register access and polled DMA.
 *
 * The register layout is in edu.h; a 32-bit write to the
 * source/destination registers sets the whole address, which is all a
 * 28-bit-masked device needs.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <linux/vfio.h>

#include "edu.h"

static int region_offset(int fd, uint32_t index, uint64_t *off)
{
	struct vfio_region_info info = { .argsz = sizeof(info), .index = index };

	if (ioctl(fd, VFIO_DEVICE_GET_REGION_INFO, &info) < 0)
		return -errno;
	if (!info.size)
		return -ENODEV;
	*off = info.offset;
	return 0;
}

static int rd32(struct edu *e, uint32_t reg, uint32_t *val)
{
	ssize_t n;

	if (e->bar) {
		*val = e->bar[reg / 4];
		return 0;
	}
	n = pread(e->fd, val, 4, (off_t)(e->bar0_off + reg));

	return n == 4 ? 0 : n < 0 ? -errno : -EIO;
}

static int wr32(struct edu *e, uint32_t reg, uint32_t val)
{
	ssize_t n;

	if (e->bar) {
		e->bar[reg / 4] = val;
		return 0;
	}
	n = pwrite(e->fd, &val, 4, (off_t)(e->bar0_off + reg));

	return n == 4 ? 0 : n < 0 ? -errno : -EIO;
}

/* Check the identification register and turn bus mastering on. */
static int edu_enable(struct edu *e)
{
	uint16_t cmd;
	uint32_t id;
	int rc;

	rc = rd32(e, EDU_REG_ID, &id);
	if (rc < 0)
		return rc;
	if ((id & 0xff) != 0xed)
		return -ENODEV;
	/* PCI command register: memory space (bit 1) + bus master (bit 2). */
	if (pread(e->fd, &cmd, 2, (off_t)(e->cfg_off + 4)) != 2)
		return -EIO;
	cmd |= 0x6;
	if (pwrite(e->fd, &cmd, 2, (off_t)(e->cfg_off + 4)) != 2)
		return -EIO;
	return 0;
}

int edu_init(struct edu *e, int fd)
{
	int rc;

	e->fd = fd;
	e->bar = NULL;
	rc = region_offset(fd, VFIO_PCI_BAR0_REGION_INDEX, &e->bar0_off);
	if (rc < 0)
		return rc;
	rc = region_offset(fd, VFIO_PCI_CONFIG_REGION_INDEX, &e->cfg_off);
	if (rc < 0)
		return rc;
	return edu_enable(e);
}

int edu_init_sysfs(struct edu *e, const char *bdf)
{
	char path[128];
	void *bar;
	int fd;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/resource0", bdf);
	fd = open(path, O_RDWR | O_SYNC | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	bar = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (bar == MAP_FAILED)
		return -errno;
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/config", bdf);
	e->fd = open(path, O_RDWR | O_CLOEXEC);
	if (e->fd < 0)
		return -errno;
	e->bar = bar;
	e->bar0_off = 0;
	e->cfg_off = 0;
	return edu_enable(e);
}

int edu_dma(struct edu *e, uint64_t iova, size_t len, int to_ram)
{
	struct timespec tick = { .tv_nsec = 5 * 1000 * 1000 };
	uint32_t ram = (uint32_t)iova, cmd;
	int rc;

	if (!len || len > EDU_DMA_MAX || iova >= EDU_IOVA_LIMIT)
		return -EINVAL;
	rc = wr32(e, EDU_REG_DMA_SRC, to_ram ? EDU_DEV_BUF : ram);
	if (!rc)
		rc = wr32(e, EDU_REG_DMA_DST, to_ram ? ram : EDU_DEV_BUF);
	if (!rc)
		rc = wr32(e, EDU_REG_DMA_CNT, (uint32_t)len);
	if (!rc)
		rc = wr32(e, EDU_REG_DMA_CMD,
			  EDU_CMD_RUN | (to_ram ? EDU_CMD_TO_RAM : 0));
	if (rc)
		return rc;
	for (int ms = 0; ms < EDU_DMA_TIMEOUT_MS; ms += 5) {
		rc = rd32(e, EDU_REG_DMA_CMD, &cmd);
		if (rc)
			return rc;
		if (!(cmd & EDU_CMD_RUN))
			return 0;
		nanosleep(&tick, NULL);
	}
	return -ETIMEDOUT;
}
