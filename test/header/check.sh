#!/usr/bin/env bash
#
# check.sh -- check priv/include/erl_driver.h against OTP's erl_driver.h.
#
#   test/header/check.sh            (from anywhere)
#
# Environment: CC (default gcc), CXX (default g++), OTP_INCLUDE (default
# /usr/lib/erlang/usr/include, the directory holding OTP's erl_driver.h).
#
# 1. layout_check.c (static assertions plus a complete sample driver) must
#    compile warning-free as C89, C99, C11 and C++ against our header, and
#    also against OTP's header, which shows the asserted values are OTP's.
# 2. A probe program printing sizes, offsets, scalar types and constant
#    values is built against each header; the outputs must be identical.
# 3. The function prototypes (gcc -aux-info), the debug-info description of
#    every type OTP's header declares (gdb), and the macro names OTP's
#    header defines must match as well.
# 4. Legacy mode (ERL_DRV_COMPAT_LEGACY_INT_API): compile-time checks of
#    the seed-era prototypes, ErlIOVec layout and version 1.5.
#
# Prints one line per check and finally "N passed, M failed"; exits 1 if
# anything failed.

set -u

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
ours="${OUR_INCLUDE:-$root/priv/include}"
otp="${OTP_INCLUDE:-/usr/lib/erlang/usr/include}"
CC="${CC:-gcc}"
CXX="${CXX:-g++}"
layout="$here/layout_check.c"

warn=(-Wall -Wextra -pedantic -Werror)
cwarn=("${warn[@]}" -Wstrict-prototypes -Wmissing-prototypes)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/erl_driver_header.XXXXXX")
[ -n "${KEEP_TMP:-}" ] && echo "keeping $tmp" || trap 'rm -rf "$tmp"' EXIT

passed=0
failed=0

# check NAME COMMAND...: run COMMAND, output to a log shown only on failure.
check() {
    local name=$1
    shift
    if "$@" >"$tmp/log" 2>&1; then
        passed=$((passed + 1))
        printf 'ok    %s\n' "$name"
    else
        failed=$((failed + 1))
        printf 'FAIL  %s\n' "$name"
        sed -e 's/^/      /' "$tmp/log" | head -n 60
    fi
}

if [ ! -f "$otp/erl_driver.h" ]; then
    echo "OTP's erl_driver.h not found in $otp (set OTP_INCLUDE)" >&2
    exit 1
fi

# ---------------------------------------------------------------------------
# 1. layout_check.c
# ---------------------------------------------------------------------------

# compile_c STD INCDIR OUT [EXTRA...]
compile_c() {
    local std=$1 inc=$2 out=$3
    shift 3
    "$CC" -std="$std" "${cwarn[@]}" -fPIC -I"$inc" "$@" -c "$layout" -o "$out"
}

# compile_cxx STD INCDIR OUT [EXTRA...]; STD "" means the compiler's default
compile_cxx() {
    local std=$1 inc=$2 out=$3
    shift 3
    local stdopt=()
    [ -n "$std" ] && stdopt=(-std="$std")
    "$CXX" "${stdopt[@]}" "${warn[@]}" -fPIC -I"$inc" "$@" -x c++ -c "$layout" -o "$out"
}

# exports OBJECT SYMBOL: OBJECT defines SYMBOL as an unmangled global
exports() {
    nm -g --defined-only "$1" | awk -v s="$2" '$3 == s { found = 1 } END { exit !found }' ||
        { echo "$1 does not define $2:"; nm -g --defined-only "$1"; return 1; }
}

for std in c89 c99 c11; do
    check "layout_check.c, ours, -std=$std" compile_c "$std" "$ours" "$tmp/lc_$std.o"
done
check "layout_check.c, ours, c++ (default standard)" compile_cxx "" "$ours" "$tmp/lc_cxx.o"
check "layout_check.c, ours, -std=c++98" compile_cxx c++98 "$ours" "$tmp/lc_cxx98.o"
check "layout_check.c, ours, -std=c99 -O2 -DHAVE_SYS_UIO_H" \
    compile_c c99 "$ours" "$tmp/lc_uio.o" -O2 -DHAVE_SYS_UIO_H
check "layout_check.c, ours, c89: DRIVER_INIT exports driver_init" \
    exports "$tmp/lc_c89.o" driver_init
check "layout_check.c, ours, c++: DRIVER_INIT exports driver_init" \
    exports "$tmp/lc_cxx.o" driver_init
static_init_name() {
    compile_c c89 "$ours" "$tmp/lc_static.o" -DSTATIC_ERLANG_DRIVER &&
        exports "$tmp/lc_static.o" layout_check_driver_init
}
check "layout_check.c, ours, c89 -DSTATIC_ERLANG_DRIVER: layout_check_driver_init" \
    static_init_name
check "layout_check.c, ours, as a shared driver" \
    "$CC" -std=c99 "${cwarn[@]}" -fPIC -shared -I"$ours" "$layout" -o "$tmp/layout_check.so"
for std in c89 c99; do
    check "layout_check.c, OTP's header (control), -std=$std" \
        compile_c "$std" "$otp" "$tmp/lc_otp_$std.o"
done
check "layout_check.c, OTP's header (control), c++" \
    compile_cxx "" "$otp" "$tmp/lc_otp_cxx.o"

# ---------------------------------------------------------------------------
# 2. Probe: print the layout and values as the compiler sees them
# ---------------------------------------------------------------------------

cat >"$tmp/probe.c" <<'EOF'
#include <stddef.h>
#include <stdio.h>
#include "erl_driver.h"

/* The underlying scalar type, named (C11). Enums show as the integer
 * type they are compatible with. */
#define TYPE_NAME(x) _Generic((x),                                          \
    char: "char", signed char: "signed char", unsigned char: "unsigned char", \
    short: "short", unsigned short: "unsigned short",                        \
    int: "int", unsigned int: "unsigned int",                                \
    long: "long", unsigned long: "unsigned long",                            \
    long long: "long long", unsigned long long: "unsigned long long",        \
    ErlDrvData: "ErlDrvData", default: "other")

#define STR_(x) #x
#define STR(x) STR_(x)

#define SIZE(t) \
    printf("sizeof(%s) = %zu\n", #t, sizeof(t))
#define SCALAR(t) \
    printf("type %s = %s, %zu bytes, %s\n", #t, TYPE_NAME((t) 0), sizeof(t), \
           (t) -1 < (t) 0 ? "signed" : "unsigned")
#define FIELD(t, f) \
    printf("%s.%s: offset %zu, size %zu\n", #t, #f, offsetof(t, f), \
           sizeof(((t *) 0)->f))
#define VALUE(c) \
    printf("%s = %s %zu bytes, %lld / %llu\n", #c, TYPE_NAME(c), sizeof(c), \
           (long long) (c), (unsigned long long) (c))
#define SPELLING(m) print_spelling(#m, STR(m))
#define POINTER(c) \
    printf("%s = %s %lld\n", #c, TYPE_NAME(c), (long long) (ErlDrvSInt) (c))

/* A macro's expansion, minus spaces: the spacing between tokens is
 * immaterial here. */
static void print_spelling(const char *name, const char *expansion)
{
    printf("%s =", name);
    for (; *expansion != '\0'; expansion++)
        if (*expansion != ' ')
            putchar(*expansion);
    putchar('\n');
}

int main(void)
{
    SIZE(ErlDrvEntry);
    FIELD(ErlDrvEntry, init);
    FIELD(ErlDrvEntry, start);
    FIELD(ErlDrvEntry, stop);
    FIELD(ErlDrvEntry, output);
    FIELD(ErlDrvEntry, ready_input);
    FIELD(ErlDrvEntry, ready_output);
    FIELD(ErlDrvEntry, driver_name);
    FIELD(ErlDrvEntry, finish);
    FIELD(ErlDrvEntry, handle);
    FIELD(ErlDrvEntry, control);
    FIELD(ErlDrvEntry, timeout);
    FIELD(ErlDrvEntry, outputv);
    FIELD(ErlDrvEntry, ready_async);
    FIELD(ErlDrvEntry, flush);
    FIELD(ErlDrvEntry, call);
    FIELD(ErlDrvEntry, unused_event_callback);
    FIELD(ErlDrvEntry, extended_marker);
    FIELD(ErlDrvEntry, major_version);
    FIELD(ErlDrvEntry, minor_version);
    FIELD(ErlDrvEntry, driver_flags);
    FIELD(ErlDrvEntry, handle2);
    FIELD(ErlDrvEntry, process_exit);
    FIELD(ErlDrvEntry, stop_select);
    FIELD(ErlDrvEntry, emergency_close);

    SIZE(ErlDrvBinary);
    FIELD(ErlDrvBinary, orig_size);
    FIELD(ErlDrvBinary, orig_bytes);

    SIZE(ErlIOVec);
    FIELD(ErlIOVec, vsize);
    FIELD(ErlIOVec, size);
    FIELD(ErlIOVec, iov);
    FIELD(ErlIOVec, binv);

    SIZE(SysIOVec);
    FIELD(SysIOVec, iov_base);
    FIELD(SysIOVec, iov_len);

    SIZE(ErlDrvSysInfo);
    FIELD(ErlDrvSysInfo, driver_major_version);
    FIELD(ErlDrvSysInfo, driver_minor_version);
    FIELD(ErlDrvSysInfo, erts_version);
    FIELD(ErlDrvSysInfo, otp_release);
    FIELD(ErlDrvSysInfo, thread_support);
    FIELD(ErlDrvSysInfo, smp_support);
    FIELD(ErlDrvSysInfo, async_threads);
    FIELD(ErlDrvSysInfo, scheduler_threads);
    FIELD(ErlDrvSysInfo, nif_major_version);
    FIELD(ErlDrvSysInfo, nif_minor_version);
    FIELD(ErlDrvSysInfo, dirty_scheduler_support);

    SIZE(ErlDrvMonitor);
    FIELD(ErlDrvMonitor, data);

    SIZE(ErlDrvNowData);
    FIELD(ErlDrvNowData, megasecs);
    FIELD(ErlDrvNowData, secs);
    FIELD(ErlDrvNowData, microsecs);

    SIZE(ErlDrvThreadOpts);
    FIELD(ErlDrvThreadOpts, suggested_stack_size);

    SCALAR(ErlDrvSizeT);
    SCALAR(ErlDrvSSizeT);
    SCALAR(ErlDrvUInt);
    SCALAR(ErlDrvSInt);
    SCALAR(ErlDrvUInt64);
    SCALAR(ErlDrvSInt64);
    SCALAR(ErlDrvTermData);
    SCALAR(ErlDrvTime);
    SCALAR(ErlDrvTSDKey);
    SCALAR(ErlDrvTimeUnit);
    SCALAR(ErlDirtyJobFlags);
    SCALAR(enum ErlNifSelectFlags);
    SCALAR(ErlNapiUInt64);
    SCALAR(ErlNapiSInt64);
    SCALAR(ErlNapiUInt);
    SCALAR(ErlNapiSInt);
    SIZE(ErlDrvData);
    SIZE(ErlDrvEvent);
    SIZE(ErlDrvPort);
    SIZE(ErlDrvThreadData);
    SIZE(ErlDrvPDL);
    SIZE(ErlDrvTid);
    printf("driver_term_nil: %s\n", TYPE_NAME(driver_term_nil));

    VALUE(ERL_DRV_EXTENDED_MARKER);
    VALUE(ERL_DRV_EXTENDED_MAJOR_VERSION);
    VALUE(ERL_DRV_EXTENDED_MINOR_VERSION);
    VALUE(ERL_DRV_MIN_REQUIRED_MAJOR_VERSION_ON_LOAD);
    VALUE(ERL_DRV_FLAG_USE_PORT_LOCKING);
    VALUE(ERL_DRV_FLAG_SOFT_BUSY);
    VALUE(ERL_DRV_FLAG_NO_BUSY_MSGQ);
    VALUE(ERL_DRV_FLAG_USE_INIT_ACK);
    VALUE(PORT_CONTROL_FLAG_BINARY);
    VALUE(PORT_CONTROL_FLAG_HEAVY);
    VALUE(PORT_FLAG_BINARY);
    VALUE(PORT_FLAG_LINE);
    VALUE(DRIVER_CALL_KEEP_BUFFER);
    VALUE(ERL_DRV_READ);
    VALUE(ERL_DRV_WRITE);
    VALUE(ERL_DRV_USE);
    VALUE(ERL_DRV_USE_NO_CALLBACK);
    VALUE(DO_READ);
    VALUE(DO_WRITE);
    VALUE(ERL_NIF_SELECT_READ);
    VALUE(ERL_NIF_SELECT_WRITE);
    VALUE(ERL_NIF_SELECT_STOP);
    VALUE(ERL_NIF_SELECT_CANCEL);
    VALUE(ERL_NIF_SELECT_CUSTOM_MSG);
    VALUE(ERL_NIF_SELECT_ERROR);
    VALUE(ERL_DIRTY_JOB_CPU_BOUND);
    VALUE(ERL_DIRTY_JOB_IO_BOUND);
    VALUE(ERL_DRV_NIL);
    VALUE(ERL_DRV_ATOM);
    VALUE(ERL_DRV_INT);
    VALUE(ERL_DRV_PORT);
    VALUE(ERL_DRV_BINARY);
    VALUE(ERL_DRV_STRING);
    VALUE(ERL_DRV_TUPLE);
    VALUE(ERL_DRV_LIST);
    VALUE(ERL_DRV_STRING_CONS);
    VALUE(ERL_DRV_PID);
    VALUE(ERL_DRV_FLOAT);
    VALUE(ERL_DRV_EXT2TERM);
    VALUE(ERL_DRV_UINT);
    VALUE(ERL_DRV_BUF2BINARY);
    VALUE(ERL_DRV_INT64);
    VALUE(ERL_DRV_UINT64);
    VALUE(ERL_DRV_MAP);
    VALUE(TERM_DATA(-7));
    VALUE(ERL_DRV_SEC);
    VALUE(ERL_DRV_MSEC);
    VALUE(ERL_DRV_USEC);
    VALUE(ERL_DRV_NSEC);
    VALUE(ERL_DRV_TIME_ERROR);
    VALUE(ERL_DRV_BUSY_MSGQ_DISABLED);
    VALUE(ERL_DRV_BUSY_MSGQ_READ_ONLY);
    VALUE(ERL_DRV_BUSY_MSGQ_LIM_MAX);
    VALUE(ERL_DRV_BUSY_MSGQ_LIM_MIN);
    VALUE(ERL_NAPI_SINT64_MAX__);
    VALUE(ERL_NAPI_SINT64_MIN__);
    VALUE(ERTS_NAPI_TIME_ERROR__);
    VALUE(ERTS_NAPI_SEC__);
    VALUE(ERTS_NAPI_MSEC__);
    VALUE(ERTS_NAPI_USEC__);
    VALUE(ERTS_NAPI_NSEC__);
    VALUE(SIZEOF_CHAR);
    VALUE(SIZEOF_SHORT);
    VALUE(SIZEOF_INT);
    VALUE(SIZEOF_LONG);
    VALUE(SIZEOF_LONG_LONG);
    VALUE(SIZEOF_VOID_P);
    POINTER(ERL_DRV_ERROR_GENERAL);
    POINTER(ERL_DRV_ERROR_ERRNO);
    POINTER(ERL_DRV_ERROR_BADARG);
    SPELLING(ERLANG_DRIVER_NAME(echo));
    SPELLING(DRIVER_INIT(echo));
    SPELLING(ERL_DRIVER_EXPORT);
    SPELLING(ERL_DRV_DEPRECATED_FUNC);
    SPELLING(EXTERN);
    return 0;
}
EOF

# probe NAME INCDIR [EXTRA...]: build and run the probe, output to $tmp/NAME.out
probe() {
    local name=$1 inc=$2
    shift 2
    "$CC" -std=c11 "${warn[@]}" -Wno-type-limits -I"$inc" "$@" \
        "$tmp/probe.c" -o "$tmp/probe_$name" &&
        "$tmp/probe_$name" >"$tmp/$name.out"
}

# same_output A B: the two probe outputs are identical (and not empty)
same_output() {
    [ -s "$tmp/$1.out" ] || { echo "no output from $1"; return 1; }
    diff -u "$tmp/$1.out" "$tmp/$2.out" && wc -l <"$tmp/$1.out" | sed 's/$/ lines identical/'
}

for variant in dynamic static uio; do
    case $variant in
        dynamic) extra=() ;;
        static) extra=(-DSTATIC_ERLANG_DRIVER) ;;
        uio) extra=(-DHAVE_SYS_UIO_H) ;;
    esac
    check "probe ($variant), OTP's header" probe "otp_$variant" "$otp" "${extra[@]}"
    check "probe ($variant), our header" probe "ours_$variant" "$ours" "${extra[@]}"
    check "probe ($variant): identical output" same_output "otp_$variant" "ours_$variant"
done

# ---------------------------------------------------------------------------
# 3. Prototypes, type declarations and macro names
# ---------------------------------------------------------------------------

printf '#include "erl_driver.h"\nint main(void) { return 0; }\n' >"$tmp/empty.c"

# prototypes NAME INCDIR: every function the headers declare, as gcc sees it
prototypes() {
    "$CC" -std=c99 -I"$2" -aux-info "$tmp/$1.aux" -fsyntax-only "$tmp/empty.c" &&
        grep -E '^/\* [^ ]*/erl_(driver|drv_nif)\.h:' "$tmp/$1.aux" |
        sed -e 's|^/\* [^*]*\*/ *||' | sort >"$tmp/$1.protos" &&
        [ -s "$tmp/$1.protos" ]
}

same_prototypes() {
    diff -u "$tmp/otp.protos" "$tmp/ours.protos" &&
        wc -l <"$tmp/otp.protos" | sed 's/$/ prototypes identical/'
}

check "prototypes, OTP's header (gcc -aux-info)" prototypes otp "$otp"
check "prototypes, our header (gcc -aux-info)" prototypes ours "$ours"
check "prototypes: identical (name, return and parameter types)" same_prototypes

# types NAME INCDIR: gdb's description of every type OTP's header declares
debug_build() {
    "$CC" -std=c99 -g -O0 -fno-eliminate-unused-debug-types -I"$2" \
        "$tmp/empty.c" -o "$tmp/types_$1"
}

type_list() {
    gdb -batch -nx -ex 'info types' "$tmp/types_otp" |
        awk '/^File .*\/erl_(driver|drv_nif)\.h:$/ { on = 1; next }
             /^$/ { on = 0 }
             on {
                 sub(/^[0-9]+:[ \t]*/, ""); sub(/;$/, "")
                 if ($1 == "typedef") print $NF; else print
             }' | sed -e 's/^\*//' | sort -u >"$tmp/type_names" &&
        [ -s "$tmp/type_names" ] &&
        while read -r t; do
            printf "echo ==== %s\\\\n\nwhatis %s\nptype/o %s\n" "$t" "$t" "$t"
        done <"$tmp/type_names" >"$tmp/types.gdb"
}

describe_types() {
    gdb -batch -nx -x "$tmp/types.gdb" "$tmp/types_$1" >"$tmp/$1.types" 2>&1 &&
        ! grep -q 'No symbol' "$tmp/$1.types"
}

same_types() {
    diff -u "$tmp/otp.types" "$tmp/ours.types" &&
        wc -l <"$tmp/type_names" | sed 's/$/ types identical (members, offsets, typedef targets, enumerators)/'
}

if command -v gdb >/dev/null 2>&1; then
    check "types, OTP's header (debug info)" debug_build otp "$otp"
    check "types, our header (debug info)" debug_build ours "$ours"
    check "types: list of the types OTP's header declares" type_list
    check "types: described by gdb, OTP's header" describe_types otp
    check "types: described by gdb, our header" describe_types ours
    check "types: identical" same_types
else
    echo "skip  type declarations (gdb not installed)"
fi

# macro_names NAME INCDIR: macros the headers define (minus system headers)
macro_names() {
    printf '#include <stdlib.h>\n#include <sys/types.h>\n#include <sys/uio.h>\n#include <limits.h>\n' \
        >"$tmp/base.c"
    "$CC" -std=c99 -E -dM "$tmp/base.c" | awk '{ print $2 }' | sed 's/(.*//' | sort -u >"$tmp/base.macros" &&
        "$CC" -std=c99 -E -dM -I"$2" "$tmp/empty.c" | awk '{ print $2 }' | sed 's/(.*//' |
        sort -u | comm -23 - "$tmp/base.macros" >"$tmp/$1.macros" &&
        [ -s "$tmp/$1.macros" ]
}

macros_covered() {
    local missing
    missing=$(comm -23 "$tmp/otp.macros" "$tmp/ours.macros")
    if [ -n "$missing" ]; then
        echo "macros OTP's header defines and ours does not:"
        echo "$missing"
        return 1
    fi
    echo "$(wc -l <"$tmp/otp.macros") OTP macros all defined;" \
        "ours adds: $(comm -13 "$tmp/otp.macros" "$tmp/ours.macros" | tr '\n' ' ')"
}

check "macro names, OTP's header" macro_names otp "$otp"
check "macro names, our header" macro_names ours "$ours"
check "macro names: every macro of OTP's header is defined" macros_covered

# with_otp_nif FIRST SECOND: our erl_driver.h and OTP's erl_nif.h in one file.
# The shared erl_drv_nif.h guard means whichever copy comes first is used.
with_otp_nif() {
    printf '#include "%s"\n#include "%s"\nint main(void) { return 0; }\n' "$1" "$2" >"$tmp/mix.c" &&
        "$CC" -std=c89 "${cwarn[@]}" -I"$ours" -I"$otp" -fsyntax-only "$tmp/mix.c" &&
        "$CC" -std=c99 "${cwarn[@]}" -I"$ours" -I"$otp" -fsyntax-only "$tmp/mix.c" &&
        "$CXX" "${warn[@]}" -I"$ours" -I"$otp" -x c++ -fsyntax-only "$tmp/mix.c"
}

check "our erl_driver.h, then OTP's erl_nif.h (c89, c99, c++)" \
    with_otp_nif erl_driver.h erl_nif.h
check "OTP's erl_nif.h, then our erl_driver.h (c89, c99, c++)" \
    with_otp_nif erl_nif.h erl_driver.h

# ---------------------------------------------------------------------------
# 4. Legacy mode: ERL_DRV_COMPAT_LEGACY_INT_API gives the seed-era (1.5)
#    int prototypes, the 24-byte ErlIOVec and version 1.5; the rest of the
#    header is unchanged (same ErlDrvEntry layout).
# ---------------------------------------------------------------------------

cat >"$tmp/legacy.c" <<'EOF_LEGACY'
#define ERL_DRV_COMPAT_LEGACY_INT_API
#include <stddef.h>
#include "erl_driver.h"

#define LEGACY_ASSERT(name, cond) typedef char legacy_assert_##name[(cond) ? 1 : -1]

LEGACY_ASSERT(major, ERL_DRV_EXTENDED_MAJOR_VERSION == 1);
LEGACY_ASSERT(minor, ERL_DRV_EXTENDED_MINOR_VERSION == 5);
LEGACY_ASSERT(iovec_size, sizeof(ErlIOVec) == 24);
LEGACY_ASSERT(iovec_vsize, offsetof(ErlIOVec, vsize) == 0);
LEGACY_ASSERT(iovec_size_at, offsetof(ErlIOVec, size) == 4);
LEGACY_ASSERT(iovec_size_int, sizeof(((ErlIOVec *)0)->size) == sizeof(int));
LEGACY_ASSERT(iovec_iov, offsetof(ErlIOVec, iov) == 8);
LEGACY_ASSERT(iovec_binv, offsetof(ErlIOVec, binv) == 16);
LEGACY_ASSERT(entry_size, sizeof(ErlDrvEntry) == 176);
LEGACY_ASSERT(entry_control, offsetof(ErlDrvEntry, control) == 72);
LEGACY_ASSERT(entry_call, offsetof(ErlDrvEntry, call) == 112);
LEGACY_ASSERT(entry_marker, offsetof(ErlDrvEntry, extended_marker) == 128);
LEGACY_ASSERT(binary_bytes, offsetof(ErlDrvBinary, orig_bytes) == 8);

/* Each changed function, assigned to a pointer of its seed-era type: a
 * mismatch is an incompatible-pointer error under -Werror (C) or an
 * error (C++). */
int legacy_prototypes(void);
int legacy_prototypes(void)
{
    int (*output)(ErlDrvPort, char *, int) = driver_output;
    int (*output2)(ErlDrvPort, char *, int, char *, int) = driver_output2;
    int (*output_binary)(ErlDrvPort, char *, int, ErlDrvBinary *, int, int) =
        driver_output_binary;
    int (*outputv)(ErlDrvPort, char *, int, ErlIOVec *, int) = driver_outputv;
    int (*vec_to_buf)(ErlIOVec *, char *, int) = driver_vec_to_buf;
    ErlDrvBinary *(*alloc_binary)(int) = driver_alloc_binary;
    ErlDrvBinary *(*realloc_binary)(ErlDrvBinary *, int) = driver_realloc_binary;
    int (*enq)(ErlDrvPort, char *, int) = driver_enq;
    int (*pushq)(ErlDrvPort, char *, int) = driver_pushq;
    int (*deq)(ErlDrvPort, int) = driver_deq;
    int (*sizeq)(ErlDrvPort) = driver_sizeq;
    int (*enq_bin)(ErlDrvPort, ErlDrvBinary *, int, int) = driver_enq_bin;
    int (*pushq_bin)(ErlDrvPort, ErlDrvBinary *, int, int) = driver_pushq_bin;
    int (*peekqv)(ErlDrvPort, ErlIOVec *) = driver_peekqv;
    int (*enqv)(ErlDrvPort, ErlIOVec *, int) = driver_enqv;
    int (*pushqv)(ErlDrvPort, ErlIOVec *, int) = driver_pushqv;
    void *(*alloc)(size_t) = driver_alloc;
    ErlDrvEntry e;
    void (*out_cb)(ErlDrvData, char *, int) = 0;
    int (*control_cb)(ErlDrvData, unsigned int, char *, int, char **, int) = 0;
    int (*call_cb)(ErlDrvData, unsigned int, char *, int, char **, int,
                   unsigned int *) = 0;
    e.output = out_cb;
    e.control = control_cb;
    e.call = call_cb;
    return output != 0 && output2 != 0 && output_binary != 0 && outputv != 0 &&
           vec_to_buf != 0 && alloc_binary != 0 && realloc_binary != 0 &&
           enq != 0 && pushq != 0 && deq != 0 && sizeq != 0 && enq_bin != 0 &&
           pushq_bin != 0 && peekqv != 0 && enqv != 0 && pushqv != 0 &&
           alloc != 0 && e.output == 0 && e.control == 0 && e.call == 0;
}
EOF_LEGACY

# legacy_compile STD: the legacy-mode checks compile warning-free
legacy_compile() {
    "$CC" -std="$1" "${cwarn[@]}" -I"$ours" -fsyntax-only "$tmp/legacy.c"
}

legacy_compile_cxx() {
    "$CXX" "${warn[@]}" -I"$ours" -x c++ -fsyntax-only "$tmp/legacy.c"
}

# legacy_rejects_modern: the same checks fail without the legacy define
# (they do test the mode).
legacy_rejects_modern() {
    sed -e '/^#define ERL_DRV_COMPAT_LEGACY_INT_API$/d' "$tmp/legacy.c" >"$tmp/legacy_off.c" &&
        ! "$CC" -std=c99 "${cwarn[@]}" -I"$ours" -fsyntax-only "$tmp/legacy_off.c" 2>/dev/null
}

for std in c89 c99 c11; do
    check "legacy mode: int prototypes and 24-byte ErlIOVec ($std)" legacy_compile "$std"
done
check "legacy mode: int prototypes and 24-byte ErlIOVec (c++)" legacy_compile_cxx
check "legacy mode: the same checks fail in the default mode" legacy_rejects_modern

# ---------------------------------------------------------------------------

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
