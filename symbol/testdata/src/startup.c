/* Vector table and reset handler for a bare Cortex-M4. */
#include <stdint.h>

extern uint32_t _estack, _sidata, _sdata, _edata, _sbss, _ebss;
int main(void);
void fault_handler_entry(void); /* in vectors.S: no debug subprogram, symbol table only */

void Reset_Handler(void)
{
	uint32_t *src = &_sidata;
	for (uint32_t *dst = &_sdata; dst < &_edata;)
		*dst++ = *src++;
	for (uint32_t *dst = &_sbss; dst < &_ebss;)
		*dst++ = 0;
	main();
	for (;;)
		;
}

void Default_Handler(void)
{
	for (;;)
		;
}

__attribute__((section(".isr_vector"), used)) const void *const vectors[16] = {
	&_estack,
	Reset_Handler,
	Default_Handler,     /* NMI */
	fault_handler_entry, /* HardFault */
	fault_handler_entry, /* MemManage */
	fault_handler_entry, /* BusFault */
	fault_handler_entry, /* UsageFault */
};
