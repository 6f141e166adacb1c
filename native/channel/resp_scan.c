/*
 * resp_scan.c - a run of RESP bulk strings located in one call (see
 * resp_scan.h).  It only reads: the Python parser still checks and builds
 * everything, and anything unusual is left to it.
 */
#include "resp_scan.h"

#define LEN_DIGITS_MAX 18 /* far beyond any bulk a server sends */

size_t resp_scan_bulks(const char *buf, size_t len, size_t pos, size_t max, uint64_t *spans,
                       size_t *next) {
    size_t found = 0;
    while (found < max && pos < len && buf[pos] == '$') {
        size_t i = pos + 1;
        uint64_t n = 0;
        while (i < len && buf[i] >= '0' && buf[i] <= '9' && i - pos <= LEN_DIGITS_MAX)
            n = n * 10 + (uint64_t)(buf[i++] - '0');
        size_t digits = i - pos - 1;
        if (digits == 0 || digits > LEN_DIGITS_MAX || (digits > 1 && buf[pos + 1] == '0'))
            break;
        if (i + 2 > len || buf[i] != '\r' || buf[i + 1] != '\n') break;
        size_t start = i + 2;
        if (n > len - start || len - start - n < 2) break;
        if (buf[start + n] != '\r' || buf[start + n + 1] != '\n') break;
        spans[2 * found] = start;
        spans[2 * found + 1] = n;
        found++;
        pos = start + n + 2;
    }
    *next = pos;
    return found;
}
