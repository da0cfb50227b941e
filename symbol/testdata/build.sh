#!/usr/bin/env bash
# Rebuilds the test firmware and the golden addr2line answers. The ELFs and goldens are committed, so the tests
# need neither the cross compiler nor binutils; run this only after changing src/.
#   apt-get install -y gcc-arm-none-eabi binutils-arm-none-eabi
# Tested with arm-none-eabi-gcc 12.2.rel1 and binutils 2.40 (Debian 12).
set -euo pipefail
cd "$(dirname "$0")"
out=$PWD
cd src
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Source paths in the debug info are rewritten to /src/fw so the ELFs do not depend on this checkout's location.
common=(-mcpu=cortex-m4 -mthumb -mfloat-abi=soft -ffreestanding -ffunction-sections -fdata-sections
	-ffile-prefix-map="$PWD"=/src/fw)

for opt in O0 O2; do
	objs=()
	for c in startup.c sensor.c app.c; do
		arm-none-eabi-gcc "${common[@]}" -"$opt" -g -c "$c" -o "$tmp/$c-$opt.o"
		objs+=("$tmp/$c-$opt.o")
	done
	arm-none-eabi-g++ "${common[@]}" -"$opt" -g -fno-exceptions -fno-rtti -c shapes.cpp -o "$tmp/shapes-$opt.o"
	arm-none-eabi-gcc "${common[@]}" -Wa,--debug-prefix-map="$PWD"=/src/fw -g -c vectors.S -o "$tmp/vectors-$opt.o"
	arm-none-eabi-gcc "${common[@]}" -"$opt" -c nodebug.c -o "$tmp/nodebug-$opt.o"   # no -g on purpose
	objs+=("$tmp/shapes-$opt.o" "$tmp/vectors-$opt.o" "$tmp/nodebug-$opt.o")
	arm-none-eabi-gcc -mcpu=cortex-m4 -mthumb -nostdlib -T link.ld -Wl,--build-id=sha1 -Wl,--gc-sections \
		"${objs[@]}" -lgcc -o "$out/firmware-$opt.elf"
done

# Golden answers: every even address of every executable section, one addr2line run per ELF.
for opt in O0 O2; do
	elf="$out/firmware-$opt.elf"
	arm-none-eabi-objdump -h "$elf" | awk '$0 ~ /CODE/ { print prev } { prev = $0 }' |
		while read -r _ name size vma _; do
			start=$((16#$vma)); end=$((start + 16#$size))
			for ((a = start; a < end; a += 2)); do printf '0x%08x\n' "$a"; done
		done >"$tmp/addrs-$opt"
	arm-none-eabi-addr2line -a -f -i -C -e "$elf" <"$tmp/addrs-$opt" >"$out/firmware-$opt.addr2line"
done
arm-none-eabi-gcc --version | head -1 >"$out/toolchain.txt"
arm-none-eabi-addr2line --version | head -1 >>"$out/toolchain.txt"
