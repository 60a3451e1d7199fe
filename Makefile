# erl_driver_compat — the two commands of the README:
#   make demo   build everything, run the bundled example driver through us
#   make test   run every test suite
# Both install the Debian packages they need when missing.

SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)
NIF_SO := priv/liberl_driver_compat.so
CARGO_SO := target/release/liberl_driver_compat.so
DEB_PACKAGES := erlang-nox erlang-dev elixir rebar3 erlang-eunit erlang-common-test erlang-dialyzer erlang-proper erlang-proper-dev

.PHONY: all deps nif compile test demo bench clean test-drivers

all: compile

# Install the Debian packages that are missing (needs root or sudo).
deps:
	@bash scripts/install_deps.sh $(DEB_PACKAGES)

# Build the Rust NIF and copy it into priv/. The old file is removed first:
# overwriting a .so that a running VM has mapped crashes that VM.
nif:
	cargo build --release --manifest-path native/erl_driver_compat/Cargo.toml
	@mkdir -p priv
	rm -f $(NIF_SO)
	cp $(CARGO_SO) $(NIF_SO)

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

test-drivers: $(DRIVER_SOS)

test/drivers/build/%.so: test/drivers/%.c priv/include/erl_driver.h
	@mkdir -p test/drivers/build
	rm -f $@
	$(CC) $(CFLAGS_DRV) -o $@ $<
