# nivis: one static binary, client and on-host agent.
#   make          build bin/nivis (with the embedded rescue base images)
#   make test     unit, root (loop devices, sshd), VM smoke and disko guest tests: what CI runs
#   make vmtest   every VM test (slow: QEMU under TCG)
#   make demo     take over a local QEMU VM with a built-in example config
#   make cross    also build linux/arm64 and darwin clients
#   make lint     gofmt, go vet, staticcheck

GO       ?= go
VERSION  ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X github.com/nivis/nivis/cmd/nivis/cli.Version=$(VERSION)
GOBUILD  := CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)"
BASES    := initramfs/base/base-amd64.cpio.zst initramfs/base/base-arm64.cpio.zst
TESTTIMEOUT ?= 80m

export CGO_ENABLED=0

.PHONY: all build base cross test unit vmtest demo lint staticcheck deps clean

all: build

build: base
	$(GOBUILD) -o bin/nivis ./cmd/nivis

# The u-root base of the rescue image, built once per arch and embedded.
base: $(BASES)

initramfs/base/base-%.cpio.zst: initramfs/cmd/mkbase/*.go go.mod go.sum
	$(GO) run ./initramfs/cmd/mkbase -arch $* -o $@

cross: build
	GOOS=linux GOARCH=arm64 $(GOBUILD) -o bin/nivis-linux-arm64 ./cmd/nivis
	GOOS=darwin GOARCH=amd64 $(GOBUILD) -o bin/nivis-darwin-amd64 ./cmd/nivis
	GOOS=darwin GOARCH=arm64 $(GOBUILD) -o bin/nivis-darwin-arm64 ./cmd/nivis

deps:
	./scripts/deps.sh

# Unit tests, root tests (required to run, not skip, when we are root) and
# the VM smoke set.
test: deps build
	NIVIS_REQUIRE_ROOT=$$( [ "$$(id -u)" -eq 0 ] && echo 1 ) NIVIS_REQUIRE_SSHD=1 \
		$(GO) test -timeout $(TESTTIMEOUT) ./...
	NIVIS_VMTESTS=1 $(GO) test -timeout $(TESTTIMEOUT) -run 'TestSmoke$$|TestDiskoExamples$$' -v ./vmtests/

unit:
	$(GO) test -short ./...

vmtest: deps build
	NIVIS_VMTESTS=1 $(GO) test -p 1 -timeout 180m -v ./...

demo: deps build
	./scripts/demo.sh

lint:
	@out=$$(gofmt -l $$(find . -name '*.go' -not -path './bin/*')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	GOOS=darwin $(GO) build ./cmd/... ./internal/... ./disko/... ./sysmgr/... ./takeover/...

# staticcheck is fetched through the module proxy; not part of CI's lint.
staticcheck:
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

clean:
	rm -rf bin dist initramfs/base/base-*.cpio.zst
