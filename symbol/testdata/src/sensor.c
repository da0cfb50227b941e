#include "sensor.h"

static uint32_t fake_adc[8] = {100, 200, 300, 400, 500, 600, 700, 800};
static unsigned next_channel;

int32_t sensor_read(volatile const uint32_t *reg)
{
	if (reg)
		return (int32_t)*reg;
	next_channel = (next_channel + 1) & 7;
	return (int32_t)fake_adc[next_channel];
}

static inline int32_t add_sample(int32_t acc, const struct sample *s)
{
	return acc + s->scaled;
}

int32_t sensor_average(const struct sample *s, unsigned n)
{
	int32_t acc = 0;
	for (unsigned i = 0; i < n; i++)
		acc = add_sample(acc, &s[i]);
	/* Integer division: a zero count traps when DIV_0_TRP is set. */
	return acc / (int32_t)n;
}

void sensor_fill(struct sample *s, unsigned n, int32_t gain)
{
	for (unsigned i = 0; i < n; i++) {
		s[i].raw = sensor_read(0);
		s[i].scaled = scale(s[i].raw, gain);
	}
}

/* Called only with a constant weight: at -O2 gcc clones it (weighted.constprop.0 in the symbol table). */
static __attribute__((noinline)) int32_t weighted(const struct sample *s, unsigned n, int32_t w)
{
	int32_t acc = 0;
	for (unsigned i = 0; i < n; i++)
		acc += s[i].raw * w;
	return acc;
}

int32_t sensor_energy(const struct sample *s, unsigned n)
{
	return weighted(s, n, 3) - weighted(s + 1, n - 1, 3);
}
