# autopeft: `make demo` runs the main job, `make test` the tests; both create .venv when missing.
# .venv is the core install (transformers 5.x, peft); .venv-adapters adds the `adapters` extra
# (AdapterHub, which pins transformers ~=4.57.6) and runs the tests marked `adapters` (it holds only what
# they need: the `test` extra, no browser, PostgreSQL driver or pretrained model).
PY := .venv/bin/python
PIP := .venv/bin/pip
STAMP := .venv/.installed
APY := .venv-adapters/bin/python
APIP := .venv-adapters/bin/pip
ASTAMP := .venv-adapters/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: demo test test-slow lint system-deps venv venv-adapters

venv: $(STAMP)
venv-adapters: $(ASTAMP)

# torch first: the CPU wheel on local disk; a bare `torch` requirement would pull a multi-GB CUDA build.
# --no-compile: Python compiles the modules it imports on first use, not every file of every package now.
# A .venv made before the split may hold adapters and transformers 4.57: the core env has neither.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PIP) install -q --upgrade pip
	$(PIP) install -q --no-compile torch==2.13.0
	$(PIP) uninstall -q -y adapters 2>/dev/null || true
	$(PIP) install -q --no-compile -e '.[dev]' --upgrade transformers
	touch $(STAMP)

$(ASTAMP): pyproject.toml
	test -x $(APY) || python3 -m venv .venv-adapters
	$(APIP) install -q --upgrade pip
	$(APIP) install -q --no-compile torch==2.13.0
	$(APIP) install -q --no-compile -e '.[test,adapters]'
	touch $(ASTAMP)

# PostgreSQL (study DB tests) and Chromium (dashboard browser tests) from Debian, when missing.
system-deps:
	@missing=""; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null 2>&1 || missing="$$missing chromium-driver"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  echo "installing:$$missing"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

# The core suite on transformers 5.x (adapters tests skipped there), then the adapters tests on 4.57.
# The two environments and the system packages are set up side by side (-j3).
test:
	$(MAKE) --no-print-directory -j3 venv venv-adapters system-deps
	$(PY) -m pytest -q
	$(APY) -m pytest -q -m 'adapters and not slow'

test-slow:
	$(MAKE) --no-print-directory -j3 venv venv-adapters system-deps
	$(PY) -m pytest -q -m slow
	$(APY) -m pytest -q -m 'adapters and slow' || test $$? = 5  # 5: no such test collected

lint: venv
	.venv/bin/ruff check .

demo: venv
	$(PY) -m autopeft.demo
