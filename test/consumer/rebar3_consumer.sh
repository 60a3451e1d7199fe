#!/usr/bin/env bash
# The sample application test/fixtures/rebar3_app, built from scratch as a
# user's project with erl_driver_compat as a rebar3 dependency, two ways:
#
#   git        {erl_driver_compat, {git, "file://CLONE", {branch, B}}}
#   checkouts  the same dependency overridden by a copy in _checkouts/
#
# Each copy of the application is built with `rebar3 compile' (our
# pre_hooks build the NIF in the dependency's own directory; the
# application's post_hook compiles its legacy driver, c_src/rebar3_app_drv.c,
# with erl_driver_compat:compile_driver/3 as README.md "Compiling drivers"
# shows), then its own tests run with `rebar3 eunit': its gen_server opens
# the driver as a pseudo-port, drives it, and survives a port failure. Any
# failure exits non-zero.
#
# The fixture's Erlang files are *.erl.in (renamed in the copy): the
# repository's own `rebar3 eunit'/`ct' compile every .erl under test/.
#
# What is tested is the repository's HEAD commit (a clone of it); a warning
# says when the working tree has uncommitted changes, which are not tested
# (the fixture itself is taken from the working tree).
#
# Cargo: the dependency's hook runs `cargo build' on the dependency's own
# sources. CARGO_TARGET_DIR defaults to target/consumer-test/ of this
# repository (kept between runs, removed by `make clean') so that the
# crates.io dependencies are compiled once; the erl_driver_compat crate of
# each copy is compiled again every run (its files are new). It is not the
# repository's own target/ directory: sharing that would let a build of the
# clone (HEAD) replace the library of the working tree.
#
# Environment: HEX_OFFLINE is set (no Hex is needed); KEEP_CONSUMER=1 keeps
# the temporary directory; CONSUMER_CARGO_TARGET_DIR overrides the cargo
# target directory.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
here="$repo/test/consumer"
export PATH="$HOME/.cargo/bin:$PATH"
# Not REBAR_OFFLINE: rebar3 3.19 refuses to fetch even a file:// git dependency then.
export HEX_OFFLINE=1
export CARGO_TARGET_DIR=${CONSUMER_CARGO_TARGET_DIR:-$repo/target/consumer-test}
unset REBAR_CONFIG REBAR_PROFILE MIX_ENV

work=$(mktemp -d "${TMPDIR:-/tmp}/edc_consumer.XXXXXX")
if [ "${KEEP_CONSUMER:-0}" = 1 ]; then
    echo "keeping $work"
else
    trap 'rm -rf "$work"' EXIT
fi

t0=$SECONDS
phase() { echo "==> [$((SECONDS - t0))s] $*"; }

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

# --- the application -------------------------------------------------------------

fixture="$repo/test/fixtures/rebar3_app"

# new_app DIR: a copy of the fixture depending on the clone.
new_app() {
    local dir=$1 f
    mkdir -p "$dir"
    cp -r "$fixture/." "$dir/"
    sed -i -e "s|@EDC_GIT_URL@|file://$clone|" -e "s|@EDC_BRANCH@|$branch|" "$dir/rebar.config"
    while IFS= read -r -d '' f; do
        mv "$f" "${f%.in}"
    done < <(find "$dir" -name '*.erl.in' -print0)
    rm -f "$dir"/priv/*.so
}

# build_and_test DIR: rebar3 compile (and its hook: the driver), rebar3 eunit.
build_and_test() {
    local dir=$1
    phase "rebar3 compile in $dir"
    (cd "$dir" && rebar3 compile)
    test -f "$dir/priv/rebar3_app_drv.so" ||
        { echo "FAIL: the post_hook did not compile $dir/priv/rebar3_app_drv.so"; exit 1; }
    phase "rebar3 eunit in $dir"
    (cd "$dir" && rebar3 eunit)
}

# --- 1. git dependency --------------------------------------------------------------

git_dir="$work/git_app"
new_app "$git_dir"
build_and_test "$git_dir"
dep="$git_dir/_build/default/lib/erl_driver_compat"
# The dependency was fetched with git and its hook built the NIF there.
test -d "$dep/.git" || { echo "FAIL: $dep is not a git checkout"; exit 1; }
test -f "$dep/priv/liberl_driver_compat.so" ||
    { echo "FAIL: the hook did not build $dep/priv/liberl_driver_compat.so"; exit 1; }

# --- 2. _checkouts ------------------------------------------------------------------

co_dir="$work/checkouts_app"
new_app "$co_dir"
mkdir -p "$co_dir/_checkouts"
# A plain copy (new mtimes: cargo compiles this copy's sources).
cp -r "$clone" "$co_dir/_checkouts/erl_driver_compat"
build_and_test "$co_dir"
test -f "$co_dir/_checkouts/erl_driver_compat/priv/liberl_driver_compat.so" ||
    { echo "FAIL: the hook did not build the NIF in _checkouts/erl_driver_compat"; exit 1; }
test ! -e "$co_dir/_build/default/lib/erl_driver_compat/.git" ||
    { echo "FAIL: the git dependency was fetched although _checkouts has it"; exit 1; }

phase "rebar3_app passed with both dependencies"
