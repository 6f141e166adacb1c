/*
 * resp_scan.h - finding a run of RESP bulk strings in C, for the Python
 * reply parser (shmcli/resp.py).
 *
 * A large array reply (LRANGE, KEYS, HGETALL...) is mostly bulk strings, one
 * after the other.  Python spends about a microsecond on each one's header;
 * this finds where each payload starts and ends in one call, and Python only
 * makes the objects.
 */
#ifndef RESP_SCAN_H
#define RESP_SCAN_H

#include <stddef.h>
#include <stdint.h>

/* From buf[pos], at most `max` consecutive "$<len>\r\n<len bytes>\r\n"
   (len plain digits, no sign or leading zero, nothing else): spans[2*i] and
   spans[2*i+1] are the i-th payload's offset and length.  Returns how many
   were found; *next is the offset after the last one.  It stops, without
   judging, at anything else (another type, a nil, an incomplete element,
   a malformed one): the caller's own parser takes it from there. */
size_t resp_scan_bulks(const char *buf, size_t len, size_t pos, size_t max, uint64_t *spans,
                       size_t *next);

#endif
