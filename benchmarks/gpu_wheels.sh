#!/usr/bin/env bash
# Wheels for a lent GPU machine, which reaches no package registry: the locked versions
# (uv.lock, hashes checked) of what its image lacks for benchmarks/gpu_check.sh, built for its
# CPython 3.12 on x86-64, downloaded here into .whl/ (git-ignored, about 10 MB); the device
# call carries `.whl` and gpu_check.sh installs them when `make sync` fails there.
#
#   benchmarks/gpu_wheels.sh        (make gpu-wheels)
set -euo pipefail
cd "$(dirname "$0")/.."

# The image holds torch, numpy, pandas, pyarrow, opencv, scikit-image, typer, pyyaml, psutil,
# pytest and their like, not: dvclive and what it imports when the trainers log (dvc and its
# stores, read off `sys.modules` after a logged run), and dlib (the test helpers' frame store
# and the metrics tests import it; its model files are over the carry limit: not needed here).
NAMES=(dvclive dvc dvc-data dvc-http dvc-objects dvc-render dvc-studio-client scmrepo dulwich
       atpublic configobj diskcache dpath flatten-dict flufl-lock funcy orjson platformdirs
       pygtrie ruamel-yaml sqltrie voluptuous wcwidth zc-lockfile dlib-bin)

requirements=$(mktemp)
trap 'rm -f "$requirements"' EXIT
python3 - "${NAMES[@]}" >"$requirements" <<'EOF'
import sys, tomllib

lock = {p["name"]: p for p in tomllib.load(open("uv.lock", "rb"))["package"]}
for name in sys.argv[1:]:
    package = lock[name]
    hashes = " ".join(f"--hash={w['hash']}" for w in package.get("wheels", []))
    print(f"{name}=={package['version']} {hashes}")
EOF
mkdir -p .whl
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux1_x86_64 -d .whl -r "$requirements"
echo "gpu_wheels: $(ls .whl/*.whl | wc -l) wheels, $(du -sh .whl | cut -f1) in .whl: carry .whl"
