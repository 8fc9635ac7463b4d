/* SPDX-License-Identifier: MIT */
/*
 * jsonfile.h - one JSON document in a root-owned directory: read strictly,
 * written atomically. journal.json and the snapshot index (snap.h) are
 * such files.
 *
 * Reading treats the file as untrusted: never through a symbolic link,
 * only a regular file of at most `max_bytes`, one JSON value and nothing
 * after it. Writing goes to ".NAME.tmp" in the same directory, is fsync'd,
 * renamed over NAME and the directory fsync'd: a crash leaves the old file
 * or the new one, never half of one.
 */
#ifndef VDESK_JSONFILE_H
#define VDESK_JSONFILE_H

#include <json-c/json.h>

#include "err.h"

/* Parses `path`, which must hold one JSON object, into *o (json_object_put
 * it). A missing file is no error: *o is NULL. Every refusal names the
 * file and what is wrong with it, and ends with `fix` ("; move it aside
 * and run 'vdeskctl recover'"). */
int vd_json_file_load(const char *path, long max_bytes, const char *fix, json_object **o, vd_err *err);

/* o's member `key` when it is a string (NULL otherwise), and when it is
 * an integer (0 into *out, else -1): the checks every reader of an
 * untrusted file makes. */
const char *vd_json_str(json_object *o, const char *key);
int vd_json_int(json_object *o, const char *key, long long *out);

/* Replaces DIR/NAME with `o`, pretty-printed, atomically and durably. */
int vd_json_file_save(const char *dir, const char *name, json_object *o, vd_err *err);

#endif
