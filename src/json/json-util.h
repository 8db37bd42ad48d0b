/*
 * json-util.h: the agent's one rule for jansson ownership, and small accessors.
 *
 * Ownership rule: a json_t * that a function returns is a new reference the caller owns
 * (and must json_decref, usually through _cleanup_json_); json_t * parameters are borrowed.
 * Values are put into containers only with the *_new setters (json_object_set_new,
 * json_array_append_new), which take over the reference, so that no insertion leaks or
 * double-frees. A borrowed value kept beyond a call is json_incref'ed first.
 */
#ifndef CLAWBOX_JSON_UTIL_H
#define CLAWBOX_JSON_UTIL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "macro.h"

/* jansson's own json_decrefp() (behind json_auto_t) accepts NULL. */
#define _cleanup_json_ _cleanup_(json_decrefp)

/* The string member key of o, or NULL when o is not an object, key is absent or not a
 * string. */
static inline const char *
json_get_str(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* A non-negative integer member, or 0. */
static inline uint64_t
json_get_u64(const json_t *o, const char *key)
{
	json_int_t v = json_integer_value(json_object_get(o, key));
	return v > 0 ? (uint64_t)v : 0;
}

#endif
