/*
 * ABI pinning test, C side: compiled as strict ISO C99 (-std=c99 -pedantic-errors), so it
 * also proves provider_abi.h is a plain C header. Prints the size/offset of every member
 * and the value of every constant next to the pinned value from abi_pins.inc, and exits 1
 * if any differs (77, "skipped", on targets the table was not written for).
 * To extend the table, read the comment at the top of abi_pins.inc.
 */
#include <recsync/provider_abi.h>

#include <stdio.h>
#include <string.h>

#if defined(__x86_64__) && defined(__LP64__) && defined(__linux__)

static int failures = 0;

static void check(const char *what, unsigned long long got, unsigned long long pinned) {
    if (got == pinned) {
        printf("ok        %-48s %llu\n", what, got);
    } else {
        printf("MISMATCH  %-48s %llu, pinned %llu\n", what, got, pinned);
        ++failures;
    }
}

/* C99 has no _Alignof: the offset of a member after a char is its alignment. */
#define PIN_ABI(major, minor)
#define PIN_STRUCT(type, size, align) struct align_of_##type { char c; type t; };
#define PIN(type, member, offset, size, ctype)
#define PIN_ENUM(type) struct align_of_##type { char c; type t; };
#define PIN_CONST(name, value)
#define PIN_STRING(name, value)
#define PIN_TYPEDEF(type, size, ctype)
#include "abi_pins.inc"
#undef PIN_ABI
#undef PIN_STRUCT
#undef PIN
#undef PIN_ENUM
#undef PIN_CONST
#undef PIN_STRING
#undef PIN_TYPEDEF

int main(void) {
    char what[160];
#define PIN_ABI(major, minor)                                                      \
    check("RECSYNC_ABI_MAJOR", RECSYNC_ABI_MAJOR, major);                           \
    check("RECSYNC_ABI_MINOR", RECSYNC_ABI_MINOR, minor);                           \
    check("RECSYNC_ABI_VERSION", RECSYNC_ABI_VERSION, ((major) << 16) | (minor));   \
    check("RECSYNC_ABI_MAJOR_OF(VERSION)", RECSYNC_ABI_MAJOR_OF(RECSYNC_ABI_VERSION), major); \
    check("RECSYNC_ABI_MINOR_OF(VERSION)", RECSYNC_ABI_MINOR_OF(RECSYNC_ABI_VERSION), minor);
#define PIN_STRUCT(type, size, align)                                              \
    check("sizeof(" #type ")", sizeof(type), size);                                 \
    check("alignof(" #type ")", offsetof(struct align_of_##type, t), align);
#define PIN(type, member, offset, size, ctype)                                     \
    snprintf(what, sizeof what, "offsetof(%s, %s)", #type, #member);               \
    check(what, offsetof(type, member), offset);                                    \
    snprintf(what, sizeof what, "sizeof(%s.%s)", #type, #member);                  \
    check(what, sizeof(((type *)0)->member), size);
#define PIN_ENUM(type)                                                             \
    check("sizeof(" #type ")", sizeof(type), 4);                                    \
    check("alignof(" #type ")", offsetof(struct align_of_##type, t), 4);
#define PIN_CONST(name, value) check(#name, (unsigned long long)(name), (unsigned long long)(value));
#define PIN_STRING(name, value)                                                    \
    if (strcmp(name, value) == 0) {                                                 \
        printf("ok        %-48s \"%s\"\n", #name, name);                            \
    } else {                                                                        \
        printf("MISMATCH  %-48s \"%s\", pinned \"%s\"\n", #name, name, value);      \
        ++failures;                                                                 \
    }
#define PIN_TYPEDEF(type, size, ctype) check("sizeof(" #type ")", sizeof(type), size);
#include "abi_pins.inc"

    /* Not a row: how the header defines the minimum, whatever the pinned number says. */
    check("RECSYNC_PROVIDER_MIN_SIZE == offsetof(parse_response) + sizeof(void *)", RECSYNC_PROVIDER_MIN_SIZE,
          offsetof(recsync_provider, parse_response) + sizeof(void *));

    if (failures) {
        printf("\n%d mismatch(es): provider_abi.h no longer matches the pinned x86_64 ABI "
               "(tests/abi/abi_pins.inc). Members are append-only; see the comment there.\n",
               failures);
        return 1;
    }
    printf("\nprovider ABI %u.%u matches the pinned layout\n", (unsigned)RECSYNC_ABI_MAJOR, (unsigned)RECSYNC_ABI_MINOR);
    return 0;
}

#else

int main(void) {
    puts("the pinned ABI table is for x86_64 Linux (LP64); skipping");
    return 77;
}

#endif
