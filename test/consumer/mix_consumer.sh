#!/usr/bin/env bash
# erl_driver_compat as a Mix dependency of the fixture project
# test/fixtures/mix_app (copied to a temporary directory), two ways:
#
#   git   {:erl_driver_compat, git: "file://CLONE", branch: B}
#   path  {:erl_driver_compat, path: CLONE}
#
# Each consumer runs `mix deps.get` and `mix compile` (our custom Mix
# compiler, mix.exs, builds the crate with cargo; the fixture's `compile`
# alias compiles its driver c_src/mix_app_drv.c with
# `mix erl_driver_compat.compile_driver`), then its own `mix test` (a
# GenServer driving the driver from Elixir). Then:
#
#   * a second `mix compile` must not rebuild the crate: the dependency's
#     priv/liberl_driver_compat.so keeps its inode and mtime, cargo's output
#     too, and cargo compiles nothing;
#   * after a change to the crate's sources (git: a new commit and
#     `mix deps.update`; path: an edited file) `mix compile` must rebuild
#     it: cargo compiles the crate and the dependency's .so exports the
#     marker function the change added.
#
# What is tested is the repository's HEAD commit (a clone of it); a warning
# says when the working tree has uncommitted changes, which are not tested.
# No Hex (HEX_OFFLINE=1), MIX_ENV=test. CARGO_TARGET_DIR is shared with
# test/consumer/rebar3_consumer.sh (target/consumer-test/, so crates.io
# dependencies are compiled once). As observed, cargo takes the path
# consumer's first build (the same sources as the git consumer's last one,
# marker 1 included, with older mtimes) as up to date: there, only the
# rebuild after a change compiles the crate. KEEP_CONSUMER=1 keeps the
# temporary directory; CONSUMER_CARGO_TARGET_DIR overrides the cargo target
# directory.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
fixture="$repo/test/fixtures/mix_app"
export PATH="$HOME/.cargo/bin:$PATH"
export HEX_OFFLINE=1
export MIX_ENV=test
export CARGO_TARGET_DIR=${CONSUMER_CARGO_TARGET_DIR:-$repo/target/consumer-test}
unset MIX_EXS MIX_BUILD_PATH MIX_DEPS_PATH MIX_TARGET

work=$(mktemp -d "${TMPDIR:-/tmp}/edc_mix_consumer.XXXXXX")
if [ "${KEEP_CONSUMER:-0}" = 1 ]; then
    echo "keeping $work"
else
    trap 'rm -rf "$work"' EXIT
fi

t0=$SECONDS
phase() { echo "==> [$((SECONDS - t0))s] $*"; }
fail() { echo "FAIL: $*"; exit 1; }

# --- a clone of HEAD on a branch -------------------------------------------------

sha=$(git -C "$repo" rev-parse HEAD)
branch=$(git -C "$repo" symbolic-ref -q --short HEAD || echo consumer-test)
if [ -n "$(git -C "$repo" status --porcelain --untracked-files=no)" ]; then
    echo "warning: uncommitted changes in $repo are not tested (HEAD $sha is)"
fi
clone="$work/erl_driver_compat"
phase "clone $repo at $sha (branch $branch)"
git clone -q --no-local "$repo" "$clone"
git -C "$clone" checkout -q -B "$branch" "$sha"
git -C "$clone" config user.email consumer-test@localhost
git -C "$clone" config user.name "mix consumer test"

built_lib="$CARGO_TARGET_DIR/release/liberl_driver_compat.so"

# stamp FILE: inode and modification time (ns) of FILE
stamp() { stat -c '%i %Y.%y' "$1"; }

# mix_in DIR LOG TASK...: runs a mix task in DIR, output in LOG (and shown)
mix_in() {
    local dir=$1 log=$2
    shift 2
    phase "mix $* in $dir"
    (cd "$dir" && mix "$@") 2>&1 | tee "$log"
    return "${PIPESTATUS[0]}"
}

# add_marker N: a change to the crate's sources that shows in the library
add_marker() {
    cat >>"$clone/native/erl_driver_compat/src/lib.rs" <<EOF

/// Added by test/consumer/mix_consumer.sh: shows that the library was rebuilt.
#[no_mangle]
pub extern "C" fn edc_mix_consumer_marker_$1() -> u32 {
    $1
}
EOF
}

# check_consumer KIND DIR DEP: build, test, no rebuild when nothing changed
check_consumer() {
    local kind=$1 dir=$2 dep=$3 before after
    mix_in "$dir" "$work/$kind-deps.log" deps.get
    mix_in "$dir" "$work/$kind-compile1.log" compile
    test -f "$dep/priv/liberl_driver_compat.so" ||
        fail "$kind: our compiler did not build $dep/priv/liberl_driver_compat.so"
    test -f "$dir/priv/mix_app_drv.so" || fail "$kind: the compile alias did not build the driver"
    mix_in "$dir" "$work/$kind-test.log" test
    grep -q ', 0 failures' "$work/$kind-test.log" || fail "$kind: mix test did not pass"

    before="$(stamp "$dep/priv/liberl_driver_compat.so") $(stamp "$built_lib")"
    mix_in "$dir" "$work/$kind-compile2.log" compile
    after="$(stamp "$dep/priv/liberl_driver_compat.so") $(stamp "$built_lib")"
    ! grep -q 'Compiling erl_driver_compat v' "$work/$kind-compile2.log" ||
        fail "$kind: mix compile without changes rebuilt the crate"
    [ "$before" = "$after" ] ||
        fail "$kind: mix compile without changes replaced the library ($before -> $after)"
    phase "$kind: no rebuild without changes"
}

# check_rebuilt KIND DIR DEP N LOG: the crate was rebuilt with marker N
check_rebuilt() {
    local kind=$1 dir=$2 dep=$3 n=$4 log=$5
    grep -q 'Compiling erl_driver_compat v' "$log" ||
        fail "$kind: mix compile did not rebuild the changed crate"
    nm -D --defined-only "$dep/priv/liberl_driver_compat.so" | grep -q "edc_mix_consumer_marker_$n" ||
        fail "$kind: $dep/priv/liberl_driver_compat.so is not the rebuilt library"
    mix_in "$dir" "$work/$kind-test2.log" test
    grep -q ', 0 failures' "$work/$kind-test2.log" || fail "$kind: mix test after the rebuild failed"
    phase "$kind: rebuilt after a change"
}

new_consumer() {
    cp -r "$fixture" "$1"
    rm -rf "$1/_build" "$1/deps" "$1/priv" "$1/mix.lock"
}

# --- 1. git dependency --------------------------------------------------------------

git_dir="$work/git_app"
new_consumer "$git_dir"
export EDC_DEP=git EDC_DEP_SOURCE="file://$clone" EDC_DEP_BRANCH="$branch"
git_dep="$git_dir/deps/erl_driver_compat"
check_consumer git "$git_dir" "$git_dep"
test -d "$git_dep/.git" || fail "$git_dep is not a git checkout"

add_marker 1
git -C "$clone" commit -qam "consumer test: marker 1"
mix_in "$git_dir" "$work/git-update.log" deps.update erl_driver_compat
mix_in "$git_dir" "$work/git-compile3.log" compile
check_rebuilt git "$git_dir" "$git_dep" 1 "$work/git-compile3.log"

# --- 2. path dependency -------------------------------------------------------------

path_dir="$work/path_app"
new_consumer "$path_dir"
export EDC_DEP=path EDC_DEP_SOURCE="$clone"
check_consumer path "$path_dir" "$clone"

add_marker 2
mix_in "$path_dir" "$work/path-compile3.log" compile
check_rebuilt path "$path_dir" "$clone" 2 "$work/path-compile3.log"

phase "both consumers passed"
