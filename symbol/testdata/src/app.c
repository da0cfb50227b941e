/* The application: a few layers of calls, inlined helpers and functions that fault in different ways. */
#include <stdint.h>
#include "sensor.h"

const char firmware_version[] = "1.4.2";

int asm_checksum(const uint8_t *p, unsigned n);
unsigned legacy_crc(const uint8_t *p, unsigned n); /* nodebug.c: compiled without -g */
int shape_total(int n);                            /* shapes.cpp */

struct sample samples[16];
volatile uint32_t *const bad_pointer = (uint32_t *)0x20001000;
volatile uint32_t *const bus_hole = (uint32_t *)0x40100000;
volatile unsigned count_override = 16;

static inline void store_word(volatile uint32_t *p, uint32_t v)
{
	*p = v;
}

__attribute__((noinline)) void write_register(uint32_t value)
{
	/* Faults with a precise bus error when bus_hole is unmapped. */
	store_word(bus_hole, value);
}

__attribute__((noinline)) int process_batch(unsigned n)
{
	sensor_fill(samples, n, 24);
	int32_t avg = sensor_average(samples, n);
	avg += sensor_energy(samples, n) & 1;
	if (avg > 500)
		write_register((uint32_t)avg);
	return avg;
}

typedef void (*handler_fn)(void);

__attribute__((noinline)) void dispatch(handler_fn fn)
{
	/* A handler without the Thumb bit set raises INVSTATE. */
	fn();
}

__attribute__((noinline)) int run_cycle(int round)
{
	int total = process_batch(count_override);
	total += asm_checksum((const uint8_t *)samples, sizeof samples);
	total += (int)legacy_crc((const uint8_t *)firmware_version, sizeof firmware_version);
	total += shape_total(round);
	if (round == 7)
		dispatch((handler_fn)0x08000100);
	*bad_pointer = (uint32_t)total;
	return total;
}

int main(void)
{
	for (int round = 0;; round++) {
		if (run_cycle(round) < 0)
			break;
	}
	return 0;
}
