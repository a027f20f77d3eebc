"""Cross-checks a replicas component (deploy/kubernetes/replicas or deploy/kubernetes/ha) with
the tapline config it patches in, and writes that config to OUT for `tapline validate`.

    python check_replicas.py COMPONENT_DIR TYPE OUT     (TYPE: postgres or kubernetes)

What every replicas component must hold is checked once; what depends on the coordination type
(the PostgreSQL password Secret, the Kubernetes ServiceAccount and its Role) after it. Run by
deploy/check.sh with PyYAML from its virtualenv; exits 1 when a check fails.
"""

import os
import sys

import yaml

errors = []


def check(ok, msg):
    print(("ok   " if ok else "FAIL ") + msg)
    if not ok:
        errors.append(msg)


def load(base):
    """The component's manifests by kind, its patches by target kind, and the config text."""
    with open(os.path.join(base, "kustomization.yaml")) as f:
        kust = yaml.safe_load(f)
    files = sorted(f for f in os.listdir(base) if f.endswith(".yaml") and f != "kustomization.yaml")
    check(sorted(kust["resources"]) == files, f"component resources {sorted(kust['resources'])} are the manifests {files}")
    docs = {}
    for name in files:
        with open(os.path.join(base, name)) as f:
            doc = yaml.safe_load(f)
        docs[doc["kind"]] = doc
    patches = {p.get("target", {}).get("kind"): yaml.safe_load(p["patch"]) for p in kust["patches"]}
    (config_op,) = patches["ConfigMap"]
    return docs, patches["Deployment"]["spec"], config_op["value"]


def check_common(docs, dep, config, kind):
    """Three replicas rolled one at a time, coordinated and stateful through `kind`."""
    check(dep["replicas"] == 3 and dep["strategy"]["type"] == "RollingUpdate", "3 replicas, RollingUpdate")
    coordination = config["coordination"]
    check(coordination["type"] == kind and config["state"]["type"] == kind, f"coordination and state are {kind}")
    check("path" not in config["state"], "no state file")
    (ctr,) = dep["template"]["spec"]["containers"]
    env = {e["name"]: e for e in ctr["env"]}
    check(env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
          and "${POD_NAME" in coordination["replica-id"], "replica-id is the pod name")
    pdb = docs["PodDisruptionBudget"]["spec"]
    check(pdb.get("maxUnavailable") == 1, "the disruption budget takes one replica at a time")


def check_postgres(docs, dep, config):
    """The coordination database's password file is mounted from the component's Secret."""
    (ctr,) = dep["template"]["spec"]["containers"]
    mounts = {m["mountPath"]: m for m in ctr["volumeMounts"] if "name" in m}
    volumes = {v["name"]: v for v in dep["template"]["spec"]["volumes"] if "name" in v}
    pw = config["coordination"]["password-file"]
    mount = mounts.get(os.path.dirname(pw))
    secret = docs["Secret"]
    check(mount is not None and volumes[mount["name"]]["secret"]["secretName"] == secret["metadata"]["name"]
          and os.path.basename(pw) in secret["stringData"], f"coordination.password-file {pw} is in Secret {secret['metadata']['name']}")


def check_kubernetes(docs, dep, config):
    """The pods run as the component's ServiceAccount, whose Role grants no more than tapline uses."""
    pod = dep["template"]["spec"]
    sa, role, binding = docs["ServiceAccount"], docs["Role"], docs["RoleBinding"]
    check(pod["serviceAccountName"] == sa["metadata"]["name"] and pod["automountServiceAccountToken"] is True,
          f"the pods run as ServiceAccount {sa['metadata']['name']} with its token mounted")
    check(binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role["metadata"]["name"]}
          and binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["metadata"]["name"]}],
          f"RoleBinding binds Role {role['metadata']['name']} to ServiceAccount {sa['metadata']['name']} only")
    # The Role grants no more than this, rule by rule: no other group, resource, verb, name
    # restriction loophole or wildcard.
    # Only the verbs tapline uses: Leases are listed (to count members and find free ones),
    # ConfigMaps only read and written by name; nothing is watched or deleted.
    needed = {
        ("coordination.k8s.io", "leases"): {"get", "list", "create", "update"},
        ("", "configmaps"): {"get", "create", "update"},
    }
    granted = set()
    for rule in role["rules"]:
        extra = set(rule) - {"apiGroups", "resources", "verbs"}
        check(not extra, f"Role rule has only apiGroups, resources, verbs (extra: {sorted(extra)})")
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                verbs = needed.get((group, resource), set())
                check(bool(verbs), f"Role grants {group or 'core'}/{resource}, one of leases, configmaps")
                for verb in rule["verbs"]:
                    check(verb in verbs, f"Role grants {verb!r} on {resource}, one of {sorted(verbs)}")
                    granted.add((group, resource, verb))
    check(granted == {(g, r, v) for (g, r), verbs in needed.items() for v in verbs},
          "Role grants get, list, create, update on leases and get, create, update on configmaps")


BY_TYPE = {"postgres": check_postgres, "kubernetes": check_kubernetes}


def main():
    base, kind, out_config = sys.argv[1], sys.argv[2], sys.argv[3]
    docs, dep, text = load(base)
    config = yaml.safe_load(text)
    with open(out_config, "w") as f:
        f.write(text)
    check_common(docs, dep, config, kind)
    BY_TYPE[kind](docs, dep, config)
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
