# The two commands of the README. Both install everything they need: uv (if missing),
# then the locked environment in .venv, then run.
UV := $(shell command -v uv 2>/dev/null || echo python3 -m uv)
RUN := $(UV) run --no-sync

.PHONY: demo test test-slow sync bench gpu-check gpu-wheels

sync:
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --user --quiet uv \
		|| python3 -m pip install --quiet uv  # --user is refused inside a virtualenv
	$(UV) sync --locked --all-extras

demo: sync
	$(RUN) dvc repro
	$(RUN) glg report --summary

test: sync  # everything but the process-tree tests: under a minute on 2 cores
	$(RUN) pytest -n 2 --dist loadfile -m "not slow"

test-slow: sync  # Flower deployment and simulation, Ray cluster, torchrun, SIGKILL resumes
	$(RUN) pytest -n 2 --dist loadfile -m slow

bench: sync
	for b in benchmarks/bench_*.py; do $(RUN) python $$b || exit 1; done

gpu-check:  # on a lent GPU machine, one call under 9 minutes: it installs what it needs itself
	bash benchmarks/gpu_check.sh

gpu-wheels:  # here, before a GPU call that reaches no registry: carry the .whl/ it fills
	bash benchmarks/gpu_wheels.sh
