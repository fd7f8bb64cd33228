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
	@echo "make run    serve the dashboard on http://$(BIND) (SQLite, one process)"
	@echo "make test   install what the tests need (apt, venv, test engine, host images) and run them"
	@echo "make bench  print the benchmark figures"
	@echo "make lint   ruff check + ruff format --check"
	@echo "make venv-kvm  add the kvm driver's libvirt binding (needs libvirt-dev, pkg-config, gcc)"
	@echo "make venv-ldap add LDAP login (python-ldap; needs libldap2-dev, libsasl2-dev, gcc)"

$(VENV)/.installed: requirements.lock pyproject.toml
	@py="$$($(find_python))"; \
	if [ -z "$$py" ]; then \
	  echo "dockerdash needs Python 3.12 or newer (Django 6.1). Install python3.12 or python3.13" >&2; \
	  echo "(Debian 13/Ubuntu 24.04: apt-get install python3 python3-venv; elsewhere pyenv install 3.13)." >&2; \
	  exit 1; \
	fi; \
	echo "Using $$py ($$($$py --version))"; \
	$$py -m venv $(VENV) || { echo "Creating the venv failed: install python3-venv for $$py" >&2; exit 1; }
	$(VENV)/bin/pip install -q --upgrade pip
	@# libvirt-python builds against libvirt-dev: it comes in with venv-kvm, so that `make run`
	@# works where libvirt is not installed (the kvm driver then says what is missing).
	@# python-ldap builds against libldap2-dev and libsasl2-dev: it comes in with venv-ldap.
	@awk '/^[a-z]/ {kvm = /^(libvirt-python|python-ldap|django-auth-ldap)==/} !kvm' requirements.lock >$(VENV)/base.lock
	$(VENV)/bin/pip install -q --require-hashes -r $(VENV)/base.lock
	$(VENV)/bin/pip install -q --no-deps --no-build-isolation -e . 2>/dev/null || $(VENV)/bin/pip install -q --no-deps -e .
	@touch $@

.PHONY: venv
venv: $(VENV)/.installed

# The kvm driver's libvirt binding, built from its source against the system's libvirt.
$(VENV)/.libvirt: $(VENV)/.installed
	@pkg-config --exists libvirt 2>/dev/null || { echo "libvirt-python needs libvirt-dev, pkg-config and gcc: apt-get install -y $(KVM_BUILD_PACKAGES)" >&2; exit 1; }
	@awk '/^[a-z]/ {kvm = /^libvirt-python==/} kvm' requirements.lock >$(VENV)/kvm.lock
	$(VENV)/bin/pip install -q --require-hashes -r $(VENV)/kvm.lock
	@touch $@

.PHONY: venv-kvm
venv-kvm: $(VENV)/.libvirt

# LDAP login (django-auth-ldap on python-ldap, built against the system's OpenLDAP).
$(VENV)/.ldap: $(VENV)/.installed
	@[ -e /usr/include/ldap.h ] || { echo "python-ldap needs libldap2-dev, libsasl2-dev and gcc: apt-get install -y libldap2-dev libsasl2-dev gcc" >&2; exit 1; }
	@awk '/^[a-z]/ {ldap = /^(python-ldap|django-auth-ldap)==/} ldap' requirements.lock >$(VENV)/ldap.lock
	$(VENV)/bin/pip install -q --require-hashes -r $(VENV)/ldap.lock
	@touch $@

.PHONY: venv-ldap
venv-ldap: $(VENV)/.ldap

.PHONY: run
run: venv
	$(PY) manage.py migrate --noinput
	@$(PY) manage.py createadmin
	$(PY) manage.py serve --bind $(BIND)

.PHONY: lint
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

# What the tests need from the system: a real Docker Engine, debootstrap for host images,
# OpenSSH, Chromium for the browser tests, PostgreSQL and Redis for the scale-out tests,
# fish, tcsh and zsh to eval `machine env`'s output in each shell it writes for, an image
# registry (no public one is reachable) for the image pull tests, sshfs and rsync for
# `machine mount` and `machine scp -d`.
APT_PACKAGES := docker.io debootstrap openssh-client chromium postgresql redis-server iproute2 iptables ca-certificates fish tcsh zsh docker-registry sshfs rsync nodejs slapd ldap-utils libldap2-dev libsasl2-dev gcc
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
test-fleet: system-deps venv venv-kvm venv-ldap
	scripts/test-engine start
	scripts/test-services start
	export "$$(scripts/test-engine env)" && $(PY) manage.py build_host_image
	scripts/test-libvirt start
	$(PY) manage.py build_vm_image

.PHONY: test
test: lint
	$(PY) manage.py makemigrations --check --dry-run
	@if [ "$$(id -u)" = 0 ]; then $(MAKE) --no-print-directory test-fleet; \
	 else echo "Not root: the tests that need the Docker engine will skip (CI runs them)."; fi
	$(TEST_ENV) $(VENV)/bin/pytest $(PYTEST_ARGS)

.PHONY: bench
bench: venv
	@if [ "$$(id -u)" = 0 ]; then $(MAKE) --no-print-directory test-fleet; fi
	$(TEST_ENV) $(PY) -m tests.bench
