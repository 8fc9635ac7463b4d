/* SPDX-License-Identifier: MIT */
/*
 * fuzz.h - what the fuzz targets share (docs/HACKING.md, "Fuzzing").
 *
 * Each tests/fuzz/fuzz_*.c defines LLVMFuzzerTestOneInput. Built with
 * clang and -fsanitize=fuzzer it is a libFuzzer binary (make fuzz); built
 * with gcc and linked with replay.c it replays the seed corpus (make check).
 *
 * The harness must never fail quietly: a scratch file it cannot write would
 * fuzz nothing while looking green. So every helper here aborts on a
 * failure of its own, and fuzz_fail aborts on a broken property, both of
 * which libFuzzer and the replay count as a crash.
 */
#ifndef VDESK_FUZZ_H
#define VDESK_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Says what broke (a property of the parser's result, or the harness) and
 * aborts. */
_Noreturn void fuzz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A directory of this process's own, mode 0700, made on first use under
 * /dev/shm (no disk flush for the journal's fsyncs) or else $TMPDIR or
 * /tmp, named with the pid, and removed when the process exits. Made
 * lazily so that each child of the replay driver gets its own. */
const char *fuzz_dir(void);

/* snprintf into out[size], which must hold the whole path. */
void fuzz_path(char *out, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Writes data to path (created or truncated, 0600). */
void fuzz_write(const char *path, const void *data, size_t size);

/* Removes path and everything under it; a missing path is fine. */
void fuzz_rm_tree(const char *path);

/* mkdir -p, mode 0700. */
void fuzz_mkdirs(const char *path);

/* A malloc'd copy of data[0..size) with a NUL added: the C string the
 * parsers see ends at the first NUL byte of the input. */
char *fuzz_str(const uint8_t *data, size_t size);

/* Splits data at each occurrence of sep (seplen bytes) into at most max
 * parts, each a fuzz_str (the last one takes the rest, separators
 * included), with its length in bytes in lens[] unless lens is NULL.
 * Returns how many; parts past that are NULL. */
size_t fuzz_split(const uint8_t *data, size_t size, const char *sep, size_t seplen, char **parts,
                  size_t *lens, size_t max);

void fuzz_free_parts(char **parts, size_t n);

#endif
