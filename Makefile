# zoff: the two commands a user needs are `make demo` and `make test`.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
DEB_PKGS := cmake ninja-build g++ libtorch-dev libopenblas0-pthread libtbb-dev libboost-dev \
            libgtest-dev libbenchmark-dev libtomlplusplus-dev libcli11-dev nlohmann-json3-dev \
            libspdlog-dev libfmt-dev libgloo-dev python3

.PHONY: deps build test test-all demo clean gpu-debs

# Installs the Debian packages that are missing; does nothing when all are there.
deps:
	@missing=$$(for p in $(DEB_PKGS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja $(CMAKE_FLAGS)

build: deps $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest -L cpu --output-on-failure -j $(JOBS)

# Everything, gpu label too (on a GPU machine).
test-all: build
	cd $(BUILD) && ctest --output-on-failure

demo: build
	./scripts/demo.sh $(BUILD)

gpu-debs:
	./scripts/fetch_gpu_debs.sh

clean:
	rm -rf $(BUILD)
