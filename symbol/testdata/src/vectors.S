/* Hand-written assembly: the fault entry and a checksum loop. No DWARF subprograms, so function names come
   from the ELF symbol table (addr2line's fallback). */
	.syntax unified
	.thumb
	.text

	.global fault_handler_entry
	.type fault_handler_entry, %function
	.thumb_func
fault_handler_entry:
	tst lr, #4
	ite eq
	mrseq r0, msp
	mrsne r0, psp
	b Default_Handler
	.size fault_handler_entry, .-fault_handler_entry

	.global asm_checksum
	.type asm_checksum, %function
	.thumb_func
asm_checksum:
	movs r2, #0
1:	cbz r1, 2f
	ldrb r3, [r0], #1
	add r2, r2, r3
	subs r1, r1, #1
	b 1b
2:	mov r0, r2
	bx lr
	.size asm_checksum, .-asm_checksum
