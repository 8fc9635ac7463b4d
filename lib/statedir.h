/* SPDX-License-Identifier: MIT */
/*
 * statedir.h - STATE_DIR, where a node keeps what vdesk must not lose:
 * journal.json (journal.h), the lock, records.jsonl, save files.
 *
 * STATE_DIR/lock serialises prologs, epilogs and vdeskctl on the node.
 * STATE_DIR/records.jsonl keeps one line per finished operation.
 *
 * Root acts on what the directory holds, so it must be root's alone
 * (vd_state_dir_check), and no file in it is opened through a symbolic
 * link: one planted there is refused, not followed.
 */
#ifndef VDESK_STATEDIR_H
#define VDESK_STATEDIR_H

#include <stddef.h>

#include <sys/types.h>

#include "err.h"

/* Takes STATE_DIR/lock (creating STATE_DIR, then vd_state_dir_check),
 * waiting up to timeout_s.
 * Returns the lock's fd in *fd; vd_lock_release closes it. */
int vd_lock_take(const char *state_dir, int timeout_s, int *fd, vd_err *err);
void vd_lock_release(int fd);

/* Writes who holds the lock ("evict job 12") into the lock file, with the
 * pid and the time, for vd_lock_holder. Best effort: the lock is what
 * counts, this only lets an admin see it. */
void vd_lock_note(int fd, const char *who);

/* Whether an operation holds STATE_DIR/lock now: 1, with "pid 123, evict
 * job 12, since 08:01:02 (35 s)" in buf; 0 if free (or never taken). */
int vd_lock_holder(const char *state_dir, char *buf, size_t size);

/* Appends one JSON line to STATE_DIR/records.jsonl (fsync'd). */
int vd_record_append(const char *state_dir, const char *json_line, vd_err *err);

/* Makes `dir` and its parents (mode 0700 for new ones). */
int vd_mkdirs(const char *dir, vd_err *err);

/* Makes the state directory if missing, then refuses it unless it is a
 * real directory (not a symbolic link), owned by the process's effective
 * uid (root in production) and writable by no one else. The message names
 * the directory, its owner and mode, and the fix. */
int vd_state_dir_check(const char *dir, vd_err *err);

/* The same for the snapshot directory, whose new directories are made
 * 0711: QEMU, running as its own user under libvirt's DAC driver, opens
 * the disk layers in it by path. */
int vd_snapshot_dir_check(const char *dir, vd_err *err);

/* The wall clock in ms since the epoch (records, the journal's since_ms). */
long long vd_now_ms(void);

/* A clock in ms that never jumps (CLOCK_MONOTONIC): for deadlines. */
long long vd_mono_ms(void);

/* The helpers journal.c writes with. */

/* DIR/NAME into out. */
void vd_state_path(char *out, size_t size, const char *dir, const char *name);

/* Opens a file of the state directory with `flags`, never through a
 * symbolic link (the error then says what to do), mode 0600 if created. */
int vd_state_open(const char *path, int flags, vd_err *err);

/* Says why opening `path` failed (errno), naming a symbolic link as one
 * vdesk does not follow. Returns -1. */
int vd_state_open_failed(const char *path, vd_err *err);

/* write(2) until done (EINTR retried): 0, or -1 with errno. */
int vd_state_write_all(int fd, const char *buf, size_t len);

/* Writes `text` and a newline in one write, then fsyncs: 0, or -1 with errno. */
int vd_state_write_line(int fd, const char *text);

/* fsyncs directory `dir` (a rename in it is then durable): 0 or -1. */
int vd_state_fsync_dir(const char *dir);

/* Replaces `path` with len bytes of data, mode `mode` (exactly: the umask
 * does not cut it) and, when the caller is root, owner uid:gid ((uid_t)-1,
 * (gid_t)-1: the caller's), so that a reader never sees half of it:
 * written to PATH.tmp-PID (never through a link someone put there:
 * O_EXCL|O_NOFOLLOW), synced, renamed over path, its directory synced.
 * Returns 0, or -1 with err naming the file ("cannot write TMP: ..."). */
int vd_file_replace(const char *path, const char *data, size_t len, mode_t mode, uid_t uid, gid_t gid,
                    vd_err *err);

#endif
