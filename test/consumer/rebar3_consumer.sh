#!/usr/bin/env bash
# erl_driver_compat as a rebar3 dependency of a fresh project, two ways:
#
#   git        {erl_driver_compat, {git, "file://CLONE", {branch, B}}}
#   checkouts  the same dependency overridden by a copy in _checkouts/
#
# Each consumer is built with `rebar3 compile` (our pre_hooks build the NIF
# in the dependency's own directory); the consumer's post_hook compiles its
# tiny driver (consumer_drv.c) with erl_driver_compat_build (the rebar3
# hook of README.md "Compiling drivers"), then edc_consumer.erl runs in
# `erl -noshell`: load_driver, open_port, port_command -> {data, _},
# port_control, port_close. Any mismatch exits non-zero.
#
# What is tested is the repository's HEAD commit (a clone of it); a warning
# says when the working tree has uncommitted changes, which are not tested.
#
# Cargo: the dependency's hook runs `cargo build` on the dependency's own
# sources. CARGO_TARGET_DIR defaults to target/consumer-test/ of this
# repository (kept between runs, removed by `make clean`) so that the
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

# --- the consumer project --------------------------------------------------------

# new_consumer DIR: a minimal rebar3 app depending on the clone.
new_consumer() {
    local dir=$1
    mkdir -p "$dir/src" "$dir/c_src" "$dir/priv"
    cat >"$dir/rebar.config" <<EOF
{erl_opts, [debug_info, warnings_as_errors]}.
{deps, [{erl_driver_compat, {git, "file://$clone", {branch, "$branch"}}}]}.
%% README.md "Compiling drivers": the driver is compiled by the dependency.
{post_hooks, [{compile, "erl -noshell -pa \\"\$REBAR_BUILD_DIR\\"/lib/erl_driver_compat/ebin "
                        "-pa \\"\$REBAR_BUILD_DIR\\"/checkouts/erl_driver_compat/ebin "
                        "-run erl_driver_compat_build main "
                        "-extra c_src/consumer_drv.c -o priv --cflags '-Wall -Wextra -Werror'"}]}.
EOF
    cat >"$dir/src/edc_consumer.app.src" <<'EOF'
{application, edc_consumer,
 [{description, "A project using erl_driver_compat"},
  {vsn, "0.1.0"},
  {registered, []},
  {applications, [kernel, stdlib, erl_driver_compat]},
  {env, []},
  {modules, []}]}.
EOF
    # (.erl.in: rebar3 eunit/ct would take a .erl under test/ for a test module)
    cp "$here/edc_consumer.erl.in" "$dir/src/edc_consumer.erl"
    cp "$here/consumer_drv.c" "$dir/c_src/"
}

# code paths of a built consumer
ebin_dirs() {
    local d
    for d in "$1"/_build/default/lib/*/ebin "$1"/_build/default/checkouts/*/ebin; do
        [ -d "$d" ] && printf '%s\n' "-pa" "$d"
    done
}

# build_and_run DIR: rebar3 compile (and its hook: the driver), the checks.
build_and_run() {
    local dir=$1 pa
    phase "rebar3 compile in $dir"
    (cd "$dir" && rebar3 compile)
    mapfile -t pa < <(ebin_dirs "$dir")
    test -f "$dir/priv/consumer_drv.so" ||
        { echo "FAIL: the post_hook did not compile $dir/priv/consumer_drv.so"; exit 1; }
    phase "erl -run edc_consumer main"
    (cd "$dir" && erl -noshell "${pa[@]}" -run edc_consumer main "$dir/priv")
}

# --- 1. git dependency --------------------------------------------------------------

git_dir="$work/git_consumer"
new_consumer "$git_dir"
build_and_run "$git_dir"
dep="$git_dir/_build/default/lib/erl_driver_compat"
# The dependency was fetched with git and its hook built the NIF there.
test -d "$dep/.git" || { echo "FAIL: $dep is not a git checkout"; exit 1; }
test -f "$dep/priv/liberl_driver_compat.so" ||
    { echo "FAIL: the hook did not build $dep/priv/liberl_driver_compat.so"; exit 1; }

# --- 2. _checkouts ------------------------------------------------------------------

co_dir="$work/checkouts_consumer"
new_consumer "$co_dir"
mkdir -p "$co_dir/_checkouts"
# A plain copy (new mtimes: cargo compiles this copy's sources).
cp -r "$clone" "$co_dir/_checkouts/erl_driver_compat"
build_and_run "$co_dir"
test -f "$co_dir/_checkouts/erl_driver_compat/priv/liberl_driver_compat.so" ||
    { echo "FAIL: the hook did not build the NIF in _checkouts/erl_driver_compat"; exit 1; }
test ! -e "$co_dir/_build/default/lib/erl_driver_compat/.git" ||
    { echo "FAIL: the git dependency was fetched although _checkouts has it"; exit 1; }

phase "both consumers passed"
