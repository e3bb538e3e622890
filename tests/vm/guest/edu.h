/* SPDX-License-Identifier: MIT */
/*
 * edu.h - drive QEMU's edu PCI device (hw/misc/edu.c) through a VFIO device
 * fd: BAR0 registers and the DMA engine, for the vm-tier tests.
 *
 * Vocabulary: "dev buffer" is edu's 4 KiB internal buffer at device address
 * EDU_DEV_BUF; "iova" is an address the device emits, translated by the
 * IOMMU.  edu masks DMA addresses to 28 bits, so IOVAs stay below 256 MiB.
 * One transfer moves at most EDU_DMA_MAX bytes (QEMU 7.2 aborts the VM on a
 * transfer ending exactly at the buffer's end).
 */
#ifndef DMASVC_VM_EDU_H
#define DMASVC_VM_EDU_H

#include <stddef.h>
#include <stdint.h>

#define EDU_DEV_BUF 0x40000u
#define EDU_DMA_MAX 2048u
#define EDU_IOVA_LIMIT (1ull << 28)

/*
 * BAR0 registers (hw/misc/edu.c, docs/specs/edu.rst), shared with
 * tests/nested/l2-edu.c, which drives edu through a sysfs BAR mapping:
 * 0x00 identification (0x010000ed for edu 1.0, low byte 0xed), 0x80 DMA
 * source, 0x88 DMA destination (32- or 64-bit accesses from 0x80 up; a
 * 32-bit write sets the whole address), 0x90 DMA count, 0x98 DMA command
 * (bit0 run, bit1 direction: 1 = dev buffer to RAM).  Each DMA completes
 * on edu's 100 ms timer (edu.c:dma_rw).  Without dma_mask=, edu masks
 * addresses to 28 bits (edu_clamp_addr).
 */
#define EDU_REG_ID 0x00
#define EDU_REG_DMA_SRC 0x80
#define EDU_REG_DMA_DST 0x88
#define EDU_REG_DMA_CNT 0x90
#define EDU_REG_DMA_CMD 0x98
#define EDU_CMD_RUN 0x1u
#define EDU_CMD_TO_RAM 0x2u
#define EDU_DMA_TIMEOUT_MS 20000

struct edu {
	int fd;            /* VFIO device fd (edu_init; not owned), or the
			      sysfs config file (edu_init_sysfs; owned) */
	uint64_t bar0_off; /* file offset of BAR0 in fd (VFIO) */
	uint64_t cfg_off;  /* file offset of PCI config space in fd */
	volatile uint32_t *bar; /* edu_init_sysfs: BAR0 mapped from sysfs; else NULL */
};

/*
 * edu_init - find BAR0 and config space of the VFIO device @fd, check the
 * edu identification register and enable bus mastering.
 * Returns 0 or -errno.
 */
int edu_init(struct edu *e, int fd);

/*
 * edu_init_sysfs - edu at PCI address @bdf without any VFIO fd: BAR0 mapped
 * from /sys/bus/pci/devices/@bdf/resource0, config space through its
 * config file (root; both bypass VFIO, so they work while another process
 * owns the device).  Checks the identification register and enables bus
 * mastering.  For a test that must not hold the device's VFIO file.
 * Returns 0 or -errno.
 */
int edu_init_sysfs(struct edu *e, const char *bdf);

/*
 * edu_dma - one DMA of @len (<= EDU_DMA_MAX) bytes between @iova and the dev
 * buffer: to_ram = 0 reads RAM into the buffer, 1 writes the buffer to RAM.
 * Waits for completion (polls the run bit, ~100 ms under TCG).  A transfer
 * the IOMMU blocks still "completes": only the data tells.
 * Returns 0, or -ETIMEDOUT / -errno when the device does not answer.
 */
int edu_dma(struct edu *e, uint64_t iova, size_t len, int to_ram);

#endif /* DMASVC_VM_EDU_H */
