# The two commands of the README. Both install everything they need: uv (if missing),
# then the locked environment in .venv, then run.
UV := $(shell command -v uv 2>/dev/null || echo python3 -m uv)
RUN := $(UV) run --no-sync

.PHONY: demo test sync bench

sync:
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --user --quiet uv \
		|| python3 -m pip install --quiet uv  # --user is refused inside a virtualenv
	$(UV) sync --locked --all-extras

demo: sync
	$(RUN) dvc repro
	$(RUN) glg report --summary

test: sync
	$(RUN) pytest -n 2 --dist loadfile

bench: sync
	for b in benchmarks/bench_*.py; do $(RUN) python $$b || exit 1; done
