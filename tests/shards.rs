//! Sharded runs: the Kubernetes manifests in assets/kubernetes are checked
//! for structure (no kubectl), then their exact shell commands run here —
//! several shard processes against one broker (a workbench rig on loopback),
//! and the merge job over their recordings.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use mqtt_workbench::export::record;
use mqtt_workbench::export::record::Recording;
use mqtt_workbench::sim::Shard;
use mqtt_workbench::wire::{Direction, PacketKind};
use yaml_rust2::{Yaml, YamlLoader};

fn manifest(name: &str) -> Vec<Yaml> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("assets/kubernetes")
        .join(name);
    let text = std::fs::read_to_string(&path).expect("as the manifest and recordings are laid out");
    YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn job<'a>(docs: &'a [Yaml], name: &str) -> &'a Yaml {
    docs.iter()
        .find(|d| d["kind"].as_str() == Some("Job") && d["metadata"]["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no Job {name}"))
}

/// The one container of a Job, its shell script and its env.
fn container(job: &Yaml) -> (&Yaml, String, BTreeMap<String, String>) {
    let containers = job["spec"]["template"]["spec"]["containers"]
        .as_vec()
        .expect("as the manifest and recordings are laid out");
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    let command: Vec<&str> = c["command"]
        .as_vec()
        .expect("as the manifest and recordings are laid out")
        .iter()
        .map(|a| {
            a.as_str()
                .expect("as the manifest and recordings are laid out")
        })
        .collect();
    assert_eq!(command, ["/bin/sh", "-c"]);
    let args = c["args"]
        .as_vec()
        .expect("as the manifest and recordings are laid out");
    assert_eq!(args.len(), 1, "one script for sh -c");
    let env = c["env"]
        .as_vec()
        .expect("as the manifest and recordings are laid out")
        .iter()
        .map(|e| {
            (
                e["name"]
                    .as_str()
                    .expect("as the manifest and recordings are laid out")
                    .to_string(),
                e["value"]
                    .as_str()
                    .expect("as the manifest and recordings are laid out")
                    .to_string(),
            )
        })
        .collect();
    (
        c,
        args[0]
            .as_str()
            .expect("as the manifest and recordings are laid out")
            .to_string(),
        env,
    )
}

/// Volumes the pod template declares, and those the container mounts.
fn check_volumes(job: &Yaml, c: &Yaml, pvc: &str) {
    let declared: BTreeSet<&str> = job["spec"]["template"]["spec"]["volumes"]
        .as_vec()
        .expect("as the manifest and recordings are laid out")
        .iter()
        .map(|v| {
            v["name"]
                .as_str()
                .expect("as the manifest and recordings are laid out")
        })
        .collect();
    let mounted: BTreeMap<&str, &str> = c["volumeMounts"]
        .as_vec()
        .expect("as the manifest and recordings are laid out")
        .iter()
        .map(|m| {
            (
                m["name"]
                    .as_str()
                    .expect("as the manifest and recordings are laid out"),
                m["mountPath"]
                    .as_str()
                    .expect("as the manifest and recordings are laid out"),
            )
        })
        .collect();
    assert_eq!(declared, mounted.keys().copied().collect());
    assert_eq!(mounted["results"], "/results");
    assert_eq!(mounted["scenario"], "/scenario");
    let vols = job["spec"]["template"]["spec"]["volumes"]
        .as_vec()
        .expect("as the manifest and recordings are laid out");
    let results = vols
        .iter()
        .find(|v| v["name"].as_str() == Some("results"))
        .expect("as the manifest and recordings are laid out");
    assert_eq!(
        results["persistentVolumeClaim"]["claimName"].as_str(),
        Some(pvc)
    );
}

#[test]
fn kubernetes_manifests_are_an_indexed_job_and_a_merge_job() {
    let docs = manifest("shards.yaml");
    let pvc = docs
        .iter()
        .find(|d| d["kind"].as_str() == Some("PersistentVolumeClaim"))
        .expect("a results volume");
    assert_eq!(pvc["apiVersion"].as_str(), Some("v1"));
    let pvc_name = pvc["metadata"]["name"].as_str().unwrap();
    // Every pod of the Job writes to it at once.
    assert!(
        pvc["spec"]["accessModes"]
            .as_vec()
            .unwrap()
            .contains(&Yaml::String("ReadWriteMany".into()))
    );

    let shards = job(&docs, "mqtt-workbench-shards");
    assert_eq!(shards["apiVersion"].as_str(), Some("batch/v1"));
    let spec = &shards["spec"];
    assert_eq!(spec["completionMode"].as_str(), Some("Indexed"));
    let n = spec["completions"].as_i64().unwrap();
    assert!(n >= 2);
    assert_eq!(spec["parallelism"].as_i64(), Some(n));
    assert_eq!(
        spec["template"]["spec"]["restartPolicy"].as_str(),
        Some("Never")
    );
    let (c, script, env) = container(shards);
    assert_eq!(
        env["SHARDS"],
        n.to_string(),
        "SHARDS must equal completions"
    );
    mqtt_workbench::broker::parse_broker_url(&env["BROKER"]).unwrap();
    humantime::parse_duration(&env["DURATION"]).unwrap();
    assert!(env["SCENARIO"].starts_with("/scenario/"));
    assert!(script.contains("JOB_COMPLETION_INDEX"));
    assert!(script.contains("--shard") && script.contains("--broker"));
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        c["image"].as_str(),
        Some(format!("mqtt-workbench:{version}").as_str())
    );
    check_volumes(shards, c, pvc_name);

    let merge_docs = manifest("merge.yaml");
    let merge = job(&merge_docs, "mqtt-workbench-merge");
    assert_eq!(merge["apiVersion"].as_str(), Some("batch/v1"));
    let (mc, merge_script, merge_env) = container(merge);
    assert!(merge_script.contains("mqtt-workbench merge"));
    assert_eq!(merge_env["SCENARIO"], env["SCENARIO"]);
    assert_eq!(merge_env["RESULTS"], env["RESULTS"]);
    assert_eq!(mc["image"].as_str(), c["image"].as_str());
    check_volumes(merge, mc, pvc_name);

    // What each index runs: the shell's own expansion of the script.
    let mut seen = BTreeSet::new();
    for index in 0..n {
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(format!(
                "mqtt_workbench() {{ printf '%s\\n' \"$@\"; }}; {}",
                script.replace("exec mqtt-workbench", "mqtt_workbench")
            ))
            .envs(&env)
            .env("JOB_COMPLETION_INDEX", index.to_string())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let argv: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        let after = |flag: &str| argv[argv.iter().position(|a| a == flag).unwrap() + 1].clone();
        assert_eq!(argv[0], "test");
        let shard: Shard = after("--shard").parse().unwrap();
        assert_eq!((shard.index as i64, shard.count as i64), (index + 1, n));
        assert!(seen.insert(after("--record")), "each shard its own file");
    }
    assert_eq!(seen.len() as i64, n);
}

#[derive(Clone)]
struct Script {
    text: String,
    env: BTreeMap<String, String>,
}

impl Script {
    /// Run it the way the pod does, with `overrides` for the env and this
    /// build's binary on PATH.
    async fn run(&self, overrides: &[(&'static str, String)]) -> std::process::Output {
        let bin = PathBuf::from(env!("CARGO_BIN_EXE_mqtt-workbench"));
        let path = format!(
            "{}:{}",
            bin.parent()
                .expect("as the manifest and recordings are laid out")
                .display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut cmd = tokio::process::Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(&self.text)
            .envs(&self.env)
            .env("PATH", path)
            .kill_on_drop(true);
        for (k, v) in overrides {
            cmd.env(k, v);
        }
        tokio::time::timeout(std::time::Duration::from_secs(60), cmd.output())
            .await
            .expect("finishes within a minute")
            .expect("as the manifest and recordings are laid out")
    }
}

fn script(file: &str, name: &str) -> Script {
    let docs = manifest(file);
    let (_, text, env) = container(job(&docs, name));
    Script { text, env }
}

/// Client ids that connected in a recording.
fn clients(rec: &Recording) -> BTreeSet<String> {
    rec.events
        .iter()
        .filter(|e| e.kind == PacketKind::Connect && e.dir == Direction::ClientToBroker)
        .map(|e| e.client_id.to_string())
        .collect()
}

/// Each client's published payloads in order.
fn payloads(rec: &Recording) -> BTreeMap<String, Vec<Vec<u8>>> {
    let mut out: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    for e in &rec.events {
        if e.kind == PacketKind::Publish && e.dir == Direction::ClientToBroker {
            out.entry(e.client_id.to_string())
                .or_default()
                .push(e.payload.as_deref().unwrap_or_default().to_vec());
        }
    }
    out
}

fn junit_failures(path: &Path) -> BTreeSet<String> {
    let xml = std::fs::read_to_string(path).expect("as the manifest and recordings are laid out");
    let doc =
        roxmltree::Document::parse(&xml).expect("as the manifest and recordings are laid out");
    doc.descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .filter(|n| n.children().any(|c| c.has_tag_name("failure")))
        .map(|n| {
            n.attribute("name")
                .expect("as the manifest and recordings are laid out")
                .to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_against_one_broker_are_the_whole_fleet_and_merge_into_one_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios/sharded-meters.ron");
    let bin = env!("CARGO_BIN_EXE_mqtt-workbench");

    // The reference: the whole fleet in one process.
    let whole_path = dir.path().join("whole.jsonl");
    let out = tokio::process::Command::new(bin)
        .arg("test")
        .arg(&scenario)
        .arg("--record")
        .arg(&whole_path)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let whole = record::read(&whole_path).unwrap();
    let expected: BTreeSet<String> = (1..=10)
        .map(|i| format!("meter-{i}"))
        .chain(["hub".to_string()])
        .collect();
    assert_eq!(clients(&whole), expected);

    // One broker for every shard: a workbench rig (embedded broker behind its tap).
    let mut rig = common::Rig::start().await;
    let results = dir.path().join("results");
    std::fs::create_dir(&results).unwrap();
    let shard_script = script("shards.yaml", "mqtt-workbench-shards");
    let n: usize = shard_script.env["SHARDS"].parse().unwrap();
    let env = |k: usize| {
        vec![
            ("JOB_COMPLETION_INDEX", k.to_string()),
            ("BROKER", format!("mqtt://127.0.0.1:{}", rig.port())),
            ("DURATION", "3s".to_string()),
            ("SCENARIO", scenario.display().to_string()),
            ("RESULTS", results.display().to_string()),
        ]
    };
    let runs: Vec<_> = (0..n)
        .map(|k| {
            let (s, e) = (shard_script.clone(), env(k));
            tokio::spawn(async move { s.run(&e).await })
        })
        .collect();
    let mut outs = Vec::new();
    for run in runs {
        outs.push(run.await.unwrap());
    }
    for (k, out) in outs.iter().enumerate() {
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "shard {}: {out:?}", k + 1);
        assert!(stdout.contains(&format!("shard {}/{n}", k + 1)), "{stdout}");
    }
    // The broker saw every device of every shard.
    rig.wait_for("every device at the shared broker", 10, |c| {
        expected
            .iter()
            .all(|id| c.sessions.contains_key(id.as_str()))
    })
    .await;

    let mut union = BTreeSet::new();
    let whole_payloads = payloads(&whole);
    for k in 1..=n {
        let rec = record::read(&results.join(format!("shard-{k}.jsonl"))).unwrap();
        let ids = clients(&rec);
        assert!(!ids.is_empty(), "shard {k} ran devices");
        assert!(union.is_disjoint(&ids), "shard {k} overlaps: {ids:?}");
        union.extend(ids.iter().cloned());
        // Same payload bytes as the unsharded run, device by device.
        for (id, sent) in payloads(&rec) {
            let reference = &whole_payloads[&id];
            let m = sent.len().min(reference.len());
            assert!(
                m >= 4,
                "{id}: {} and {} messages",
                sent.len(),
                reference.len()
            );
            assert_eq!(sent[..m], reference[..m], "{id}'s payloads");
        }
        // Alone, a shard sees part of the fleet: its whole-fleet count fails.
        let failures = junit_failures(&results.join(format!("shard-{k}.xml")));
        assert!(
            failures.contains("the fleet reports"),
            "shard {k}: {failures:?}"
        );
    }
    assert_eq!(union, expected, "the shards together are the whole fleet");

    // The merge job: one log and one verdict for the whole fleet.
    let merge_script = script("merge.yaml", "mqtt-workbench-merge");
    let merge_env = [
        ("SCENARIO", scenario.display().to_string()),
        ("RESULTS", results.display().to_string()),
    ];
    let out = merge_script.run(&merge_env).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout.contains("PASS  the fleet reports"), "{stdout}");
    assert!(!stdout.contains("FAIL"), "{stdout}");
    assert!(junit_failures(&results.join("report.xml")).is_empty());
    let merged = record::read(&results.join("merged.jsonl")).unwrap();
    assert_eq!(clients(&merged), expected);
    let shard_frames: usize = (1..=n)
        .map(|k| {
            record::read(&results.join(format!("shard-{k}.jsonl")))
                .unwrap()
                .events
                .len()
        })
        .sum();
    assert_eq!(
        merged.events.len(),
        shard_frames,
        "nothing lost in the merge"
    );
    assert!(merged.events.windows(2).all(|w| w[0].t_us <= w[1].t_us));
    let log = mqtt_workbench::export::read(&results.join("messages.csv")).unwrap();
    let published = merged
        .events
        .iter()
        .filter(|e| e.kind == PacketKind::Publish)
        .count();
    assert_eq!(log.len(), published);

    // One shard's recording alone does not make the fleet's verdict.
    let out = tokio::process::Command::new(bin)
        .arg("merge")
        .arg(results.join("shard-1.jsonl"))
        .arg("--scenario")
        .arg(&scenario)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("FAIL  the fleet reports"));

    // A damaged recording is named with its line, and nothing is written.
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"format\": \"something else\"}\n").unwrap();
    let merged_out = dir.path().join("never.jsonl");
    let out = tokio::process::Command::new(bin)
        .arg("merge")
        .arg(results.join("shard-1.jsonl"))
        .arg(&bad)
        .arg("--record")
        .arg(&merged_out)
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.jsonl:1:"), "{stderr}");
    assert!(!merged_out.exists());
}
