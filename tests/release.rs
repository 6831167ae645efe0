//! The release workflow (`.github/workflows/release.yml`) runs on GitHub's
//! Windows and macOS runners, which this machine cannot be: here we check its
//! structure. One job per platform builds from the repository's own packaging
//! (`wix/`, `macos/`, `scripts/build-deb.sh`), installs what it built and runs
//! the installed binary on a shipped scenario; the publish job waits for all
//! three and writes checksums.

use std::path::PathBuf;

use yaml_rust2::{Yaml, YamlLoader};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn workflow() -> Yaml {
    let text = std::fs::read_to_string(root().join(".github/workflows/release.yml"))
        .expect(".github/workflows/release.yml");
    YamlLoader::load_from_str(&text)
        .expect("release.yml is YAML")
        .remove(0)
}

/// Every `run:` script of a job, joined.
fn scripts(job: &Yaml) -> String {
    job["steps"]
        .as_vec()
        .expect("steps")
        .iter()
        .filter_map(|s| s["run"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn one_job_per_platform_builds_installs_and_runs_what_it_built() {
    let w = workflow();
    let jobs = &w["jobs"];
    let runner = |job: &str| jobs[job]["runs-on"].as_str().unwrap_or("").to_string();
    assert!(
        runner("windows").starts_with("windows-"),
        "{}",
        runner("windows")
    );
    assert!(runner("macos").starts_with("macos-"), "{}", runner("macos"));
    assert!(
        runner("linux").starts_with("ubuntu-"),
        "{}",
        runner("linux")
    );

    // Each platform builds with the repository's own packaging…
    let build = [
        ("linux", "scripts/build-deb.sh"),
        ("windows", "cargo wix"),
        ("macos", "macos/build-app.sh"),
    ];
    for (job, how) in build {
        let s = scripts(&jobs[job]);
        assert!(s.contains(how), "{job} builds with {how}:\n{s}");
        // …installs it, and runs the installed binary on a shipped scenario.
        assert!(s.contains("--version"), "{job} runs the installed binary");
        let scenario = s
            .split_whitespace()
            .find_map(|w| {
                w.trim_matches('"')
                    .rsplit(['/', '\\'])
                    .next()
                    .filter(|n| n.ends_with(".ron"))
            })
            .unwrap_or_else(|| panic!("{job} runs a scenario:\n{s}"));
        assert!(
            root().join("scenarios").join(scenario).is_file(),
            "{job} runs {scenario}, which is not a shipped scenario"
        );
    }
    assert!(scripts(&jobs["linux"]).contains("apt-get install"));
    assert!(scripts(&jobs["windows"]).contains("msiexec"));
    assert!(scripts(&jobs["macos"]).contains("hdiutil attach"));
    // The packaging the jobs name exists here.
    for f in [
        "wix/main.wxs",
        "macos/build-app.sh",
        "macos/Info.plist",
        "scripts/build-deb.sh",
    ] {
        assert!(root().join(f).is_file(), "{f}");
    }
}

#[test]
fn publish_waits_for_every_platform_and_writes_checksums() {
    let w = workflow();
    let publish = &w["jobs"]["publish"];
    let needs: Vec<&str> = publish["needs"]
        .as_vec()
        .expect("publish needs the platform jobs")
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    for job in ["linux", "windows", "macos"] {
        assert!(needs.contains(&job), "publish needs {job}: {needs:?}");
        let uploads = w["jobs"][job]["steps"]
            .as_vec()
            .expect("steps")
            .iter()
            .any(|s| {
                s["uses"]
                    .as_str()
                    .is_some_and(|u| u.starts_with("actions/upload-artifact"))
            });
        assert!(uploads, "{job} uploads what it built");
    }
    assert!(scripts(publish).contains("sha256sum"), "checksums");
    let tags = &w["on"]["push"]["tags"];
    assert!(
        tags.as_vec()
            .is_some_and(|t| t.iter().any(|t| t.as_str() == Some("v*"))),
        "runs on version tags"
    );
}
