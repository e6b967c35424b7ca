#!/usr/bin/env bash
# Create (or reuse) the virtual environment .venv in the repository root and
# install what requirements.txt pins. Idempotent: a second run takes seconds.
#
# mmcv 2.1.0 has no wheel for torch 2.13, so it is built from source once
# (about 9 minutes on 2 cores) and the wheel is cached in
# ${HMSA_WHEEL_CACHE:-~/.cache/hmsa/wheels} for every later install.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${HMSA_VENV:-$ROOT/.venv}"
WHEELS="${HMSA_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hmsa/wheels}"
PY="$VENV/bin/python"
STAMP="$VENV/.hmsa-installed"

log() { echo "[setup] $*"; }

# The plugin is installed in editable mode from this checkout (pyproject.toml);
# pip records where from in direct_url.json.
installed_from() {
    "$PY" - <<'PYEOF' 2>/dev/null
import json
from importlib.metadata import distribution
print(json.loads(distribution('mmseg-hmsa').read_text('direct_url.json'))['url'])
PYEOF
}
if [[ -f "$STAMP" ]] && cmp -s "$ROOT/requirements.txt" "$STAMP" \
        && [[ "$(installed_from)" == "file://$ROOT" ]]; then
    exit 0
fi

if [[ ! -x "$PY" ]]; then
    log "creating virtual environment $VENV"
    python3 -m venv "$VENV"
fi

pip_install() { "$PY" -m pip install --disable-pip-version-check -q "$@"; }

torch_pin="$(grep -E '^torch==' "$ROOT/requirements.txt" | head -1)"
if "$PY" -c 'import torch' 2>/dev/null; then
    log "keeping installed torch $("$PY" -c 'import torch; print(torch.__version__)')"
else
    log "installing $torch_pin"
    pip_install "$torch_pin"
fi

mmcv_pin="$(grep -E '^mmcv==' "$ROOT/requirements.txt" | head -1)"
mmcv_version="${mmcv_pin#mmcv==}"
if "$PY" -c "import mmcv, mmcv.ops, sys; sys.exit(mmcv.__version__ != '$mmcv_version')" 2>/dev/null; then
    log "mmcv $mmcv_version with ops already installed"
else
    mkdir -p "$WHEELS"
    wheel="$(ls "$WHEELS"/mmcv-"$mmcv_version"-*.whl 2>/dev/null | head -1 || true)"
    if [[ -z "$wheel" ]]; then
        # Build requirements of mmcv's setup.py (it imports pkg_resources);
        # requirements.txt sets setuptools back to its pin afterwards.
        pip_install 'setuptools<70' wheel ninja
        log "building $mmcv_pin from source with its ops (about 9 minutes on 2 cores)"
        tmp="$(mktemp -d)"
        MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
            "$PY" -m pip wheel --disable-pip-version-check --no-build-isolation \
            --no-deps -w "$tmp" "$mmcv_pin"
        mv "$tmp"/mmcv-*.whl "$WHEELS"/
        rm -rf "$tmp"
        wheel="$(ls "$WHEELS"/mmcv-"$mmcv_version"-*.whl | head -1)"
    fi
    log "installing $(basename "$wheel")"
    pip_install -c "$ROOT/requirements.txt" "$wheel"
fi

log "installing requirements.txt"
pip_install -r "$ROOT/requirements.txt"
"$PY" -c 'import mmcv.ops, mmseg.models, mmpretrain' || {
    echo "[setup] the environment is incomplete: importing mmcv.ops/mmseg.models failed" >&2
    exit 1
}
# Install the plugin itself (editable: edits take effect at once) so that
# `custom_imports=dict(imports=['projects.hmsa'])` works from any working
# directory and from MMSeg's own tools. Only `projects.hmsa` is mapped.
log "installing the plugin (pip install -e $ROOT)"
rm -f "$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/hmsa_repo_root.pth"
pip_install --no-deps --no-build-isolation -e "$ROOT"
cp "$ROOT/requirements.txt" "$STAMP"
log "environment ready: $VENV"
