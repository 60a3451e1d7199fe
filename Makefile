# erl_driver_compat — the two commands of the README:
#   make demo   build everything, run the bundled example driver through us
#   make test   run every test suite
# Both install the Debian packages they need when missing.

SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)
# The directory of this Makefile: `make nif` also runs from a rebar3 hook in
# a dependency's directory (or with -C / -f from elsewhere).
ROOT := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
NIF_SO := $(ROOT)/priv/liberl_driver_compat.so
NIF_MANIFEST := $(ROOT)/native/erl_driver_compat/Cargo.toml
DEB_PACKAGES := erlang-nox erlang-dev elixir rebar3 erlang-eunit erlang-common-test erlang-dialyzer erlang-proper erlang-proper-dev

.PHONY: all deps nif compile test demo bench clean test-drivers

all: compile

# Install the Debian packages that are missing (needs root or sudo).
deps:
	@bash scripts/install_deps.sh $(DEB_PACKAGES)

# Build the Rust NIF and copy it into priv/. The old file is removed first:
# overwriting a .so that a running VM has mapped crashes that VM.
# Cargo decides where the library goes (CARGO_TARGET_DIR, a .cargo/config
# build.target-dir, the workspace root): ask it with `cargo metadata`.
nif:
	cargo build --release --manifest-path $(NIF_MANIFEST)
	@mkdir -p $(ROOT)/priv
	@target_dir=$$(cargo metadata --format-version 1 --no-deps --manifest-path $(NIF_MANIFEST) \
	    | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p'); \
	built="$${target_dir:-$(ROOT)/target}/release/liberl_driver_compat.so"; \
	echo "rm -f $(NIF_SO) && cp $$built $(NIF_SO)"; \
	rm -f $(NIF_SO) && cp "$$built" $(NIF_SO)

compile: deps
	rebar3 compile

test: deps
	bash scripts/run_tests.sh

demo: deps
	bash scripts/demo.sh

bench: deps
	bash scripts/bench.sh

clean:
	rm -rf _build target $(NIF_SO) test/drivers/build

# Test drivers: compiled once against our header, loaded both natively and
# through the compat layer by the differential suites.
DRIVER_SRCS := $(wildcard test/drivers/*.c)
DRIVER_SOS := $(patsubst test/drivers/%.c,test/drivers/build/%.so,$(DRIVER_SRCS))
CFLAGS_DRV := -shared -fPIC -O2 -g -Wall -Wextra -Werror -Ipriv/include

# Seed-era drivers (test/drivers/legacy/): source written against the
# interface 1.x prototypes, compiled in the header's legacy mode; loaded
# through the compat layer only (OTP 25 refuses them), their modern twins
# natively (test/legacy_SUITE.erl).
LEGACY_DRIVER_SRCS := $(wildcard test/drivers/legacy/*.c)
LEGACY_DRIVER_SOS := $(patsubst test/drivers/legacy/%.c,test/drivers/build/%.so,$(LEGACY_DRIVER_SRCS))

test-drivers: $(DRIVER_SOS) $(LEGACY_DRIVER_SOS)

test/drivers/build/%.so: test/drivers/%.c priv/include/erl_driver.h
	@mkdir -p test/drivers/build
	rm -f $@
	$(CC) $(CFLAGS_DRV) -o $@ $<

test/drivers/build/%.so: test/drivers/legacy/%.c priv/include/erl_driver.h
	@mkdir -p test/drivers/build
	rm -f $@
	$(CC) $(CFLAGS_DRV) -DERL_DRV_COMPAT_LEGACY_INT_API -o $@ $<
