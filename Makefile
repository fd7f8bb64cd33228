# dockerdash: `make run` serves the dashboard, `make test` installs what the tests need and
# runs them all. Both work on a fresh Debian/Ubuntu clone.

SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
PY := $(VENV)/bin/python
BIND ?= 127.0.0.1:8000
export DOCKERDASH_TEST_ROOT ?= /var/cache/dockerdash-test

# Python 3.12+ (Django 6.1): a .python-version selects pyenv's 3.13 where pyenv is used.
find_python = for c in python3.13 python3.12 python3 "$$(pyenv root 2>/dev/null)/versions/3.13.0/bin/python"; do \
	  if command -v "$$c" >/dev/null 2>&1 && "$$c" -c 'import sys, venv; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then echo "$$c"; break; fi; \
	done

.PHONY: help
help:
	@echo "make run    serve the dashboard on http://$(BIND) (SQLite, one process; installs the runtime lock)"
	@echo "make test   install what the tests need (apt, test lock, test engine, images) and run them"
	@echo "make bench  print the benchmark figures"
	@echo "make lint   ruff check + ruff format --check + the locks match pyproject.toml"
	@echo "make lock   rewrite requirements*.lock from pyproject.toml (uv; UPGRADE=1 for newest)"
	@echo "make venv   the development environment: runtime + test locks (+ kvm binding where libvirt-dev is, LDAP login where libldap2-dev is)"

# One line per phase, so a first `make run` says what it is waiting for.
say = echo "dockerdash: $(1)"
# The locks go in as they are: every pin hashed, nothing resolved (uv; pip where uv cannot be had).
INSTALL_LOCK := scripts/install-lock $(VENV)

# The runtime: what `make run` needs and nothing a test uses (requirements.lock).
$(VENV)/.installed: requirements.lock pyproject.toml
	@py="$$($(find_python))"; \
	if [ -z "$$py" ]; then \
	  echo "dockerdash needs Python 3.12 or newer (Django 6.1). Install python3.12 or python3.13" >&2; \
	  echo "(Debian 13/Ubuntu 24.04: apt-get install python3 python3-venv; elsewhere pyenv install 3.13)." >&2; \
	  exit 1; \
	fi; \
	$(call say,[1/3] creating the Python environment $(VENV) with $$py ($$($$py --version))); \
	$$py -m venv $(VENV) || { echo "Creating the venv failed: install python3-venv for $$py" >&2; exit 1; }
	@$(call say,[2/3] installing the runtime lock: $$(grep -c '^[a-z]' requirements.lock) pinned packages)
	@$(INSTALL_LOCK) requirements.lock
	@$(call say,[3/3] installing dockerdash itself (editable))
	@$(INSTALL_LOCK) --project
	@touch $@

# The kvm driver's libvirt binding, built from its source against the system's libvirt: added
# by `make run` and `make test` by themselves wherever libvirt-dev is installed (`make test`
# installs it as root); elsewhere the kvm driver says what is missing when used.
$(VENV)/.libvirt: $(VENV)/.installed requirements-kvm.lock
	@$(call say,building the kvm driver's libvirt binding against this machine's libvirt)
	@$(INSTALL_LOCK) requirements-kvm.lock
	@touch $@

.PHONY: venv-kvm
venv-kvm:
	@if pkg-config --exists libvirt 2>/dev/null; then $(MAKE) --no-print-directory $(VENV)/.libvirt; \
	 elif command -v libvirtd >/dev/null || command -v virsh >/dev/null; then \
	  $(call say,libvirt is here but not libvirt-dev: the kvm driver needs apt-get install -y $(KVM_BUILD_PACKAGES)); \
	 fi

# The tests' and developers' tools on top of the runtime (requirements-test.lock).
$(VENV)/.test: $(VENV)/.installed requirements-test.lock
	@$(call say,installing the test lock: $$(grep -c '^[a-z]' requirements-test.lock) pinned packages)
	@$(INSTALL_LOCK) requirements-test.lock
	@# Every module compiled once now (15 s on two cores): otherwise the suite's four workers
	@# and the hundreds of commands it starts each compile what they import until a .pyc is
	@# written (a fresh clone's suite: 16.1 min; the same clone again, compiled: 12.7 min).
	@$(call say,compiling the environment's Python modules)
	@$(VENV)/bin/python -m compileall -q -j 0 $(VENV)/lib >/dev/null
	@touch $@

.PHONY: venv venv-test
venv: venv-test venv-kvm venv-ldap
venv-test: $(VENV)/.test

# LDAP login (django-auth-ldap on python-ldap, built from its source against the system's
# OpenLDAP; requirements-ldap.lock): added by `make venv` and `make test` wherever
# libldap2-dev is installed (`make test` installs it as root); elsewhere LDAP login is off.
$(VENV)/.ldap: $(VENV)/.installed requirements-ldap.lock
	@$(call say,building python-ldap against this machine's OpenLDAP)
	@$(INSTALL_LOCK) requirements-ldap.lock
	@touch $@

.PHONY: venv-ldap
venv-ldap:
	@if [ -e /usr/include/ldap.h ]; then $(MAKE) --no-print-directory $(VENV)/.ldap; \
	 else $(call say,LDAP login needs apt-get install -y libldap2-dev libsasl2-dev gcc (skipped)); fi

.PHONY: run
run: $(VENV)/.installed venv-kvm
	@$(PY) scripts/run.py $(BIND)

.PHONY: lock
lock: venv-test
	scripts/lock $(if $(UPGRADE),--upgrade)

.PHONY: lint lint-code lint-locks
lint: lint-code lint-locks
lint-code: venv-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
# The locks against pyproject.toml: about 35 s of waiting on the package index for little CPU,
# so `make test` runs it beside the suite.
lint-locks: venv-test
	scripts/lock --check

# What the tests need from the system: a real Docker Engine, debootstrap for host images,
# OpenSSH, Chromium for the browser tests, PostgreSQL and Redis for the scale-out tests,
# fish, tcsh and zsh to eval `machine env`'s output in each shell it writes for, an image
# registry (no public one is reachable) for the image pull tests, sshfs and rsync for
# `machine mount` and `machine scp -d`, git and a static C toolchain for the swarm stack tests
# (a git-backed stack; a tiny static image built with gcc -static), node for the OIDC test
# provider, slapd and ldap-utils for the LDAP login tests, libldap2-dev and libsasl2-dev for python-ldap.
APT_PACKAGES := docker.io debootstrap openssh-client chromium postgresql redis-server iproute2 iptables ca-certificates fish tcsh zsh docker-registry sshfs rsync git gcc libc6-dev nodejs slapd ldap-utils libldap2-dev libsasl2-dev
# The kvm driver's: libvirt and QEMU, what libvirt-python builds with, the VM image builder's
# tools, genisoimage for cloud-init seeds, and sshd for the qemu+ssh:// test.
KVM_BUILD_PACKAGES := libvirt-dev pkg-config gcc
KVM_APT_PACKAGES := qemu-system-x86 qemu-utils libvirt-daemon-system libvirt-clients dnsmasq-base grub-pc-bin genisoimage openssh-server $(KVM_BUILD_PACKAGES)
.PHONY: system-deps
system-deps:
	@missing=$$(for p in $(APT_PACKAGES) $(KVM_APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q "install ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "Missing packages: $$missing (run as root or apt-get install them)" >&2; exit 1; fi; \
	  echo "Installing $$missing"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi
	@# npm (the test OpenID provider's installer): in nodesource's nodejs, a package of its own in Debian's.
	@command -v npm >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends npm

# The private test engine's DOCKER_HOST and the services' URLs, exported for what follows.
TEST_ENV = set -a; eval "$$(scripts/test-engine env 2>/dev/null)"; \
	eval "$$(scripts/test-services env 2>/dev/null)"; \
	eval "$$(scripts/test-libvirt env 2>/dev/null)"; set +a; \
	export DOCKERDASH_DATA_DIR=$(CURDIR)/var/test;

.PHONY: test-fleet
test-fleet: system-deps venv
	scripts/test-engine start
	scripts/test-services start
	export "$$(scripts/test-engine env)" && $(PY) manage.py build_host_image
	scripts/test-libvirt start
# Only the Docker-ready VM image: the kvm tests boot no other (build_vm_image alone builds both).
	$(PY) manage.py build_vm_image bookworm

# Files run on TEST_WORKERS pytest-xdist workers, a whole file per worker (--dist loadfile: a
# file's shared fixtures, such as the kvm tests' VM, stay in one process), in the order
# tests/conftest.py gives (the longest files first; xdist would sort files by their number of
# tests). Four by default (twice CI's two cores: most tests wait on engines, VMs, SSH and
# browsers, and two workers left the cores idle a third of the time). Four workers share one
# test engine, so the fleet keeps what a worker makes apart from the others' (labels by
# instance id; the fake clouds' hosts have fixed addresses). Each worker has its own data dir
# (tests/settings.py); TEST_WORKERS=0 runs in one process.
TEST_WORKERS ?= 4
PYTEST_PARALLEL = $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadfile \
	--no-loadscope-reorder)

.PHONY: test suite
test: lint-code
	@$(MAKE) --no-print-directory -j2 lint-locks suite

suite:
	$(PY) manage.py makemigrations --check --dry-run
	@if [ "$$(id -u)" = 0 ]; then $(MAKE) --no-print-directory test-fleet; \
	 else echo "Not root: the tests that need the Docker engine will skip (CI runs them)."; fi
	$(TEST_ENV) $(VENV)/bin/pytest $(PYTEST_PARALLEL) $(PYTEST_ARGS)

.PHONY: bench
bench: venv
	@if [ "$$(id -u)" = 0 ]; then $(MAKE) --no-print-directory test-fleet; fi
	$(TEST_ENV) $(PY) -m tests.bench
