//! Replicas sharing tasks through Kubernetes Leases and ConfigMaps, against the fake API server
//! of `harness/kube_api.rs` (a fake: no Kubernetes API server can run on these machines). The
//! backend is driven in process for the lease and fencing rules, and as real `tapline run`
//! processes for balance and fail-over. Leases last 3 s, as in `replicas.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::json;
use tapline::config::KubernetesTarget;
use tapline::coordination::kubernetes::KubernetesCoordinator;
use tapline::coordination::{Coordinator, Error, SharedState};

use crate::harness::cli;
use crate::harness::kube_api::KubeApi;
use crate::harness::replicas::{
    assert_resumed, cursors_going_back, eventually, overlaps, Backend, Replicas, Setup, Source,
};

const LEASE: Duration = Duration::from_secs(3);
const RENEW: Duration = Duration::from_secs(1);
const INTERVAL: Duration = Duration::from_millis(200);
const NAMESPACE: &str = "plant-a";

fn coordinator(
    api: &KubeApi,
    dir: &std::path::Path,
    replica: &str,
    lease: Duration,
) -> KubernetesCoordinator {
    let target = KubernetesTarget {
        namespace: None,
        lease_prefix: "tl".into(),
        kubeconfig: Some(api.kubeconfig(dir, NAMESPACE)),
    };
    KubernetesCoordinator::new(target, replica.into(), lease)
}

/// The task Leases' holders and how many each holds, from the fake's objects.
fn holders(api: &KubeApi) -> BTreeMap<String, usize> {
    let mut held = BTreeMap::new();
    for lease in api.objects("leases", NAMESPACE) {
        if lease["metadata"]["labels"]["tapline.io/role"] != "task" {
            continue;
        }
        if let Some(holder) = lease["spec"]["holderIdentity"].as_str() {
            *held.entry(holder.to_string()).or_default() += 1;
        }
    }
    held
}

fn balanced(api: &KubeApi, replicas: &[&str], each: usize) -> bool {
    let held = holders(api);
    replicas.iter().all(|r| held.get(*r) == Some(&each)) && held.len() == replicas.len()
}

fn tasks_of(api: &KubeApi, replica: &str) -> BTreeSet<String> {
    api.objects("leases", NAMESPACE)
        .into_iter()
        .filter(|lease| {
            lease["spec"]["holderIdentity"] == replica
                && lease["metadata"]["labels"]["tapline.io/role"] == "task"
        })
        .map(|lease| {
            lease["metadata"]["annotations"]["tapline.io/task"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

fn lease_object(api: &KubeApi, name: &str) -> serde_json::Value {
    api.objects("leases", NAMESPACE)
        .into_iter()
        .find(|lease| lease["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no Lease {name}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_taken_over_fences_the_old_holders_state_writes_and_renewals() {
    let api = KubeApi::start();
    let dir = tempfile::tempdir().unwrap();
    let lease = Duration::from_secs(1);
    let a = coordinator(&api, dir.path(), "a", lease);
    let b = coordinator(&api, dir.path(), "b", lease);
    let tasks = vec!["Readings 1".to_string()];
    for replica in [&a, &b] {
        replica.join(&tasks).await.unwrap();
    }
    assert_eq!(a.heartbeat().await.unwrap(), 1);
    let taken = a.acquire(&tasks, 1).await.unwrap();
    assert_eq!(taken.len(), 1, "a takes the free lease");
    let held_by_a = taken[0].clone();
    assert_eq!(b.heartbeat().await.unwrap(), 2, "b sees a's membership");
    assert!(
        b.acquire(&tasks, 1).await.unwrap().is_empty(),
        "a fresh lease is not free"
    );
    a.state()
        .store(&held_by_a, &json!({"cursor": 1}))
        .await
        .unwrap();
    assert_eq!(
        b.state().load("Readings 1").await.unwrap(),
        Some(json!({"cursor": 1}))
    );

    // a pauses (renews nothing) for longer than the lease; b, which has watched the Lease
    // unchanged for a whole lease duration on its own clock, takes it.
    tokio::time::sleep(lease + Duration::from_millis(200)).await;
    b.heartbeat().await.unwrap();
    let taken = b.acquire(&tasks, 1).await.unwrap();
    assert_eq!(taken.len(), 1, "b takes the expired lease");
    assert!(taken[0].generation > held_by_a.generation);
    let name = taken[0].task.clone();
    assert_eq!(name, "Readings 1");
    let object = api
        .objects("leases", NAMESPACE)
        .into_iter()
        .find(|l| l["metadata"]["annotations"]["tapline.io/task"] == "Readings 1")
        .unwrap();
    assert_eq!(object["spec"]["holderIdentity"], "b");
    assert_eq!(object["spec"]["leaseDurationSeconds"], 1);
    assert_eq!(object["spec"]["leaseTransitions"], 1);
    assert!(
        object["spec"]["renewTime"].as_str().unwrap().contains('T'),
        "{object}"
    );

    let stale = a.state().store(&held_by_a, &json!({"cursor": 0})).await;
    assert!(matches!(stale, Err(Error::Fenced { .. })), "{stale:?}");
    assert!(
        a.renew(std::slice::from_ref(&held_by_a))
            .await
            .unwrap()
            .is_empty(),
        "a's renewal is refused"
    );
    b.state()
        .store(&taken[0], &json!({"cursor": 2}))
        .await
        .unwrap();
    assert_eq!(
        a.state().load("Readings 1").await.unwrap(),
        Some(json!({"cursor": 2}))
    );
    assert_eq!(
        lease_object(&api, "tl.member.a")["spec"]["holderIdentity"],
        "a"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_from_another_writer_is_retried_and_leaving_releases_the_leases() {
    let api = KubeApi::start();
    let dir = tempfile::tempdir().unwrap();
    let a = coordinator(&api, dir.path(), "a", Duration::from_secs(5));
    let tasks = vec!["t1".to_string()];
    a.join(&tasks).await.unwrap();
    a.heartbeat().await.unwrap();
    let held = a.acquire(&tasks, 1).await.unwrap().remove(0);
    a.state().store(&held, &json!({"n": 1})).await.unwrap();
    // kubectl edits the ConfigMap in between: the write meets a 409, reads again, and since
    // the claim is still a's, writes.
    api.edit("configmaps", NAMESPACE, "tl-t1", |map| {
        map["metadata"]["labels"]["edited"] = json!("yes")
    });
    a.state().store(&held, &json!({"n": 2})).await.unwrap();
    assert_eq!(a.state().load("t1").await.unwrap(), Some(json!({"n": 2})));
    a.leave().await.unwrap();
    let object = lease_object(&api, "tl-t1");
    assert!(object["spec"]["holderIdentity"].is_null(), "{object}");
    assert!(lease_object(&api, "tl.member.a")["spec"]["holderIdentity"].is_null());
}

#[test]
fn replicas_balance_and_take_over_a_killed_ones_tasks_through_leases() {
    let api = KubeApi::start();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.kubeconfig(dir.path(), NAMESPACE);
    let source = Source::start();
    let mut replicas = Replicas::new(&Setup {
        backend: Backend::Kubernetes {
            kubeconfig: &kubeconfig,
        },
        source: &source,
        tasks: 12,
        lease: "3s",
        interval: "200ms",
    });
    for name in ["r1", "r2", "r3"] {
        replicas.start(name);
    }
    let took = eventually(3 * LEASE, "4 leases on each of 3 replicas", || {
        balanced(&api, &["r1", "r2", "r3"], 4)
    });
    eprintln!("balanced after {took:?}");

    // Traffic: per renew period, each replica replaces its member Lease and its 4 task
    // Leases once (5 PUTs) and lists once.
    let puts = api.requests("PUT", "leases");
    let lists = api.requests("GET", "leases");
    std::thread::sleep(3 * RENEW);
    let puts = api.requests("PUT", "leases") - puts;
    let lists = api.requests("GET", "leases") - lists;
    assert!(
        puts <= 3 * 3 * 5 + 3,
        "{puts} Lease replaces in 3 renew periods"
    );
    assert!(lists <= 3 * 3 + 3, "{lists} Lease reads in 3 renew periods");

    let moved = tasks_of(&api, "r1");
    let killed_at = source.now();
    replicas.kill("r1");
    let bound = LEASE + RENEW + INTERVAL + Duration::from_millis(300);
    let fail_over = source.moved(&moved, "r1", killed_at, bound * 2);
    let fail_over = fail_over.into_iter().max().unwrap();
    // Expiry is judged on the observer's clock from the last change it saw, which may be up
    // to a renew period after the last renewal: one more renew period than with PostgreSQL.
    assert!(fail_over <= bound + RENEW, "took {fail_over:?} to move");
    eventually(2 * LEASE, "the 12 tasks on 2 replicas", || {
        balanced(&api, &["r2", "r3"], 6)
    });
    // Every sort of body the replicas sent (creates and replaces of task and member Leases and
    // of ConfigMaps) is valid against the official schemas.
    assert_eq!(api.validate_sent(dir.path()), 6);
    std::thread::sleep(RENEW);
    let runs = source.runs();
    assert!(
        overlaps(&runs).is_empty(),
        "runs overlap: {:#?}",
        overlaps(&runs)
    );
    assert!(
        cursors_going_back(&runs).is_empty(),
        "cursors went back: {:#?}",
        cursors_going_back(&runs)
    );
}

#[test]
fn kubernetes_coordination_problems_are_reported_with_their_key_paths() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("coordination: {type: kubernetes}\n", "state.type"),
        ("state: {type: kubernetes}\n", "state.type"),
        ("coordination: {type: postgres, url: 'postgres://h/a'}\nstate: {type: kubernetes}\n", "state.type"),
        ("coordination: {type: kubernetes, lease-prefix: Bad_Prefix}\nstate: {type: kubernetes}\n", "coordination.lease-prefix"),
        ("coordination: {type: kubernetes, namespace: 'a/b'}\nstate: {type: kubernetes}\n", "coordination.namespace"),
        ("coordination: {type: kubernetes, kubeconfig: /nonexistent/kubeconfig}\nstate: {type: kubernetes}\n", "coordination.kubeconfig"),
        ("coordination: {type: kubernetes, url: 'postgres://h/a'}\nstate: {type: kubernetes}\n", "coordination.url"),
        ("coordination: {type: kubernetes, lease-duration: 10ms}\nstate: {type: kubernetes}\n", "coordination.lease-duration"),
        ("coordination: {type: postgres, url: 'postgres://h/a', namespace: x}\nstate: {type: postgres}\n", "coordination.namespace"),
        ("coordination: {lease-prefix: x}\n", "coordination.lease-prefix"),
    ];
    for (block, path) in cases {
        let config = dir.path().join("c.yaml");
        std::fs::write(&config, format!("auth: {{type: none}}\n{block}")).unwrap();
        let run = cli::validate(&config);
        assert_eq!(run.code, 2, "{block}: {}", run.all_output());
        assert!(
            run.all_output().contains(path),
            "{block}: expected {path} in {}",
            run.all_output()
        );
    }
}

fn two_replicas(api: &KubeApi, dir: &std::path::Path, source: &Source) -> Replicas {
    let kubeconfig = api.kubeconfig(dir, NAMESPACE);
    let mut replicas = Replicas::new(&Setup {
        backend: Backend::Kubernetes {
            kubeconfig: &kubeconfig,
        },
        source,
        tasks: 4,
        lease: "3s",
        interval: "200ms",
    });
    replicas.start("p1");
    replicas.start("p2");
    eventually(3 * LEASE, "2 leases each", || {
        balanced(api, &["p1", "p2"], 2)
    });
    replicas
}

fn assert_consistent(source: &Source) {
    let runs = source.runs();
    let overlapping = overlaps(&runs);
    assert!(overlapping.is_empty(), "runs overlap: {overlapping:#?}");
    let back = cursors_going_back(&runs);
    assert!(back.is_empty(), "cursors went back: {back:#?}");
}

#[test]
fn a_paused_replica_runs_nothing_it_no_longer_holds_and_its_stale_writes_are_refused() {
    let api = KubeApi::start();
    let dir = tempfile::tempdir().unwrap();
    let source = Source::start();
    let replicas = two_replicas(&api, dir.path(), &source);
    source.wait_for(LEASE, "a run of p1 in progress", |runs| {
        runs.iter().any(|r| r.replica == "p1" && r.end.is_none())
    });
    replicas.signal("p1", libc::SIGSTOP);
    eventually(2 * LEASE + 2 * RENEW, "p2 holding p1's tasks", || {
        balanced(&api, &["p2"], 4)
    });
    replicas.signal("p1", libc::SIGCONT);
    std::thread::sleep(3 * RENEW);
    let log = replicas.log("p1");
    assert!(
        log.contains("task leases gone"),
        "p1 dropped its leases:\n{log}"
    );
    assert_consistent(&source);

    // Taken over behind p1's back (its own clock cannot see it): another holder claims the
    // ConfigMaps of p1's tasks; p1's next cursor write meets 409, sees the claim, is refused.
    eventually(4 * LEASE, "2 leases each again", || {
        balanced(&api, &["p1", "p2"], 2)
    });
    let refused = |log: &str| log.matches("state write refused").count();
    let before = refused(&replicas.log("p1"));
    for task in tasks_of(&api, "p1") {
        api.edit("configmaps", NAMESPACE, &format!("tl-{task}"), |map| {
            map["metadata"]["annotations"]["tapline.io/holder"] = json!("intruder");
        });
    }
    eventually(2 * RENEW, "p1's cursor write refused", || {
        refused(&replicas.log("p1")) > before
    });
}

#[test]
fn with_the_api_server_down_tasks_stop_before_their_leases_expire_and_start_again_after() {
    let api = KubeApi::start();
    let dir = tempfile::tempdir().unwrap();
    let source = Source::start();
    let replicas = two_replicas(&api, dir.path(), &source);
    eventually(2 * LEASE, "every task's cursor saved", || {
        saved_cursors(&api).len() == 4
    });
    let saved_before = saved_cursors(&api);
    api.set_down(true);
    let down_at = source.now();
    std::thread::sleep(2 * LEASE);
    let late: Vec<_> = source
        .runs()
        .into_iter()
        .filter(|r| r.end.is_none_or(|end| end > down_at + LEASE))
        .collect();
    assert!(
        late.is_empty(),
        "runs went on past the leases' expiry: {late:#?}"
    );
    assert_eq!(replicas.ready("p1"), 503, "p1 not ready without the API");
    api.set_down(false);
    let up_at = source.now();
    source.wait_for(3 * LEASE, "all 4 tasks running again", |runs| {
        (0..4).all(|i| {
            let task = format!("t{i:02}");
            runs.iter().any(|r| r.task == task && r.start > up_at)
        })
    });
    let runs = source.runs();
    let overlapping = overlaps(&runs);
    assert!(overlapping.is_empty(), "runs overlap: {overlapping:#?}");
    // The runs during the outage could not save their cursors: the tasks resume from the last
    // saved one, as with PostgreSQL.
    assert_resumed(&runs, &saved_before, up_at);
}

/// Each task's saved cursor, from its state ConfigMap.
fn saved_cursors(api: &KubeApi) -> Vec<(String, u64)> {
    api.objects("configmaps", NAMESPACE)
        .iter()
        .filter_map(|map| {
            let task = map["metadata"]["annotations"]["tapline.io/task"].as_str()?;
            let state: serde_json::Value =
                serde_json::from_str(map["data"]["state.json"].as_str()?).ok()?;
            let cursor = state["cursor"].as_str()?.parse().ok()?;
            Some((task.to_string(), cursor))
        })
        .collect()
}

/// The fake answers `kubectl` as an API server would: create, get, replace with the current
/// `resourceVersion`, 409 for a stale one and for a second create, 404 for a missing object.
#[test]
fn kubectl_creates_gets_and_replaces_leases_and_configmaps_on_the_fake_api_server() {
    let api = KubeApi::start();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.kubeconfig(dir.path(), NAMESPACE);
    let kubectl = |args: &[&str], stdin: Option<&str>| {
        use std::io::Write;
        let mut child = std::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("kubectl: install it with `apt-get install kubernetes-client`");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.unwrap_or("").as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    };
    let objects = [
        ("lease", "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {name: l1}\nspec: {holderIdentity: a, leaseDurationSeconds: 15}\n"),
        ("configmap", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c1}\ndata: {k: v}\n"),
    ];
    for (kind, manifest) in objects {
        let name = if kind == "lease" { "l1" } else { "c1" };
        let (ok, out) = kubectl(&["get", kind, name], None);
        assert!(
            !ok && (out.contains("NotFound") || out.contains("not found")),
            "{out}"
        );
        let (ok, out) = kubectl(&["create", "--validate=false", "-f", "-"], Some(manifest));
        assert!(ok, "{out}");
        let (ok, out) = kubectl(&["create", "--validate=false", "-f", "-"], Some(manifest));
        assert!(!ok && out.contains("AlreadyExists"), "{out}");
        let (ok, current) = kubectl(&["get", kind, name, "-o", "json"], None);
        assert!(ok, "{current}");
        let mut object: serde_json::Value = serde_json::from_str(&current).unwrap();
        let stale = object.clone();
        object["metadata"]["labels"] = json!({"changed": "yes"});
        let (ok, out) = kubectl(
            &["replace", "--validate=false", "-f", "-"],
            Some(&object.to_string()),
        );
        assert!(ok, "{out}");
        let (ok, out) = kubectl(
            &["replace", "--validate=false", "-f", "-"],
            Some(&stale.to_string()),
        );
        assert!(
            !ok && (out.contains("Conflict") || out.contains("modified")),
            "{out}"
        );
        let (ok, out) = kubectl(
            &[
                "get",
                kind,
                name,
                "-o",
                "jsonpath={.metadata.labels.changed}",
            ],
            None,
        );
        assert!(ok && out.trim() == "yes", "{out}");
    }
}

#[test]
fn validate_check_auth_lists_the_leases_and_reports_an_unreachable_api_server() {
    let api = KubeApi::start();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.kubeconfig(dir.path(), NAMESPACE);
    let config = dir.path().join("c.yaml");
    std::fs::write(
        &config,
        format!(
            "auth: {{type: none}}\ncoordination: {{type: kubernetes, kubeconfig: '{}', lease-prefix: tl}}\nstate: {{type: kubernetes}}\n",
            kubeconfig.display()
        ),
    )
    .unwrap();
    let check = || {
        cli::run(
            cli::tapline()
                .args(["validate", "--check-auth", "-c"])
                .arg(&config),
        )
    };
    let good = check();
    assert_eq!(good.code, 0, "{}", good.all_output());
    assert!(
        good.stdout
            .contains("coordination OK: kubernetes namespace plant-a"),
        "{}",
        good.stdout
    );
    assert_eq!(api.requests("GET", "leases"), 1);
    assert!(
        !good.all_output().contains("fake-token"),
        "{}",
        good.all_output()
    );
    api.set_down(true);
    let bad = check();
    assert_eq!(bad.code, 1, "{}", bad.all_output());
    assert!(
        bad.all_output()
            .contains("coordination backend kubernetes namespace plant-a"),
        "{}",
        bad.all_output()
    );
    assert!(
        !bad.all_output().contains("fake-token"),
        "{}",
        bad.all_output()
    );
}
