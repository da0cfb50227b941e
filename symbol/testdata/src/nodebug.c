/* Compiled without -g: addr2line finds the name in the symbol table and no file or line. */
#include <stdint.h>

unsigned legacy_crc(const uint8_t *p, unsigned n)
{
	unsigned crc = 0xffff;
	while (n--) {
		crc ^= *p++;
		for (int i = 0; i < 8; i++)
			crc = (crc & 1) ? (crc >> 1) ^ 0xa001 : crc >> 1;
	}
	return crc;
}
