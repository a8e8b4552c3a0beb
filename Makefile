# Thin wrapper over CMake. `make run` and `make test` install what is missing
# (Debian 12, as root), build, and run. See README.md.
BUILD      ?= build
BUILD_SAN  ?= build-san
JOBS       ?= $(shell nproc)

# Debian packages the build, the tests and the main job need.
DEB_PKGS = build-essential cmake pkg-config libwebsockets-dev libev-dev libzmq3-dev liburing-dev \
           libmsgpack-dev libjansson-dev libcmocka-dev libxxhash-dev libinih-dev libssl-dev \
           python3 python3-websockets python3-zmq python3-msgpack iproute2 python3-jwt python3-cryptography \
           python3-matplotlib chromium
# The browser tests also need node (18 or later) and npm: Debian's nodejs and
# npm are installed only when no node is on PATH, since a node from
# elsewhere (NodeSource's nodejs bundles npm) conflicts with Debian's npm.
NODE_PKGS = nodejs npm

.PHONY: all deps build build-san run test test-fast test-san clean

all: build

deps:
	@missing=$$(for p in $(DEB_PKGS); do \
	    dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; \
	  done); \
	command -v node >/dev/null 2>&1 || missing="$$missing $(NODE_PKGS)"; \
	command -v npm >/dev/null 2>&1 || missing="$$missing npm"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

build-san: deps
	cmake -S . -B $(BUILD_SAN) -DCMAKE_BUILD_TYPE=Debug -DWSGATE_SANITIZE=ON >/dev/null
	cmake --build $(BUILD_SAN) -j $(JOBS)

run: build
	exec deploy/run-main.sh $(BUILD)

# Every test, twice: a normal build, then under ASan+UBSan.
test: test-fast test-san

test-fast: build
	cd $(BUILD) && ctest --output-on-failure -j 2 --timeout 300

test-san: build-san
	cd $(BUILD_SAN) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j 2 --timeout 600

clean:
	rm -rf $(BUILD) $(BUILD_SAN)
