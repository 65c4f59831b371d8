/* common.h - what the libFuzzer harnesses share (fuzz/README.md).
 *
 * The readers under test take paths, so a harness writes its input to a
 * scratch file of its own process (in /dev/shm when there is one, so the
 * round trip stays in memory) and reads that. Every harness also gets
 * common.c's LLVMFuzzerInitialize, which turns off the engine's storage
 * cache so that libFuzzer's leak detection sees real leaks only. */
#ifndef DISTILL_FUZZ_COMMON_H
#define DISTILL_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* Replaces the contents of scratch file `slot` (0 or 1) with data[0..size)
 * and returns its path; aborts if the file cannot be written (a harness
 * problem, not a finding). */
const char *fuzz_file(int slot, const uint8_t *data, size_t size);

#endif
