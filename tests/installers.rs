//! The Windows and macOS installers can only be built on their platforms; here
//! we check what Linux can: the WiX source is valid XML and every file it names
//! exists, the plist is valid, and the .app bundle is assembled correctly.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn shipped_scenarios() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root().join("scenarios"))
        .expect("the scenarios folder")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".ron") || n.ends_with(".js") || n.ends_with(".yaml"))
        .collect();
    v.sort();
    v
}

#[test]
fn wix_source_is_valid_and_every_file_it_names_exists() {
    let text = std::fs::read_to_string(root().join("wix/main.wxs")).unwrap();
    let doc = roxmltree::Document::parse(&text).expect("wix/main.wxs is well-formed XML");
    let product = doc
        .descendants()
        .find(|n| n.has_tag_name("Product"))
        .expect("a Product");
    assert_eq!(product.attribute("Name"), Some("MQTT Workbench"));
    assert_eq!(
        product.attribute("Version"),
        Some("$(var.Version)"),
        "version comes from Cargo.toml via cargo-wix"
    );
    let upgrade = product.attribute("UpgradeCode").unwrap();
    assert!(is_guid(upgrade), "UpgradeCode {upgrade} is a GUID");
    // Every fixed component GUID is a GUID and unique.
    let guids: Vec<&str> = doc
        .descendants()
        .filter_map(|n| n.attribute("Guid"))
        .filter(|g| *g != "*")
        .collect();
    assert!(guids.iter().all(|g| is_guid(g)));
    let mut dedup = guids.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), guids.len(), "component GUIDs are unique");
    // A Start-menu shortcut to the installed executable.
    let shortcut = doc
        .descendants()
        .find(|n| n.has_tag_name("Shortcut"))
        .expect("a Start-menu shortcut");
    assert_eq!(shortcut.attribute("Target"), Some("[#exe0]"));
    assert!(
        shortcut
            .ancestors()
            .any(|a| a.attribute("Id") == Some("ProgramMenuFolder"))
    );
    // Every source file exists (the binary is cargo-wix's to provide).
    let mut sources = Vec::new();
    for n in doc.descendants() {
        for attr in ["Source", "SourceFile"] {
            if let Some(s) = n.attribute(attr) {
                sources.push(s.to_string());
            }
        }
        if n.has_tag_name("WixVariable") {
            sources.push(n.attribute("Value").unwrap().to_string());
        }
    }
    let mut checked = 0;
    for s in &sources {
        if s.starts_with("$(var.CargoTargetBinDir)") {
            continue;
        }
        let p = root().join(s.replace('\\', "/"));
        assert!(p.is_file(), "wix/main.wxs names {s}, which does not exist");
        checked += 1;
    }
    assert!(checked >= 7, "checked {checked} files");
    // Every shipped scenario is installed.
    let installed: Vec<String> = sources
        .iter()
        .filter(|s| s.starts_with("scenarios\\"))
        .map(|s| s.trim_start_matches("scenarios\\").to_string())
        .collect();
    let mut installed_sorted = installed.clone();
    installed_sorted.sort();
    assert_eq!(
        installed_sorted,
        shipped_scenarios(),
        "wix/main.wxs installs exactly the shipped scenarios"
    );
}

fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit()))
}

fn plist_value<'a>(doc: &'a roxmltree::Document, key: &str) -> Option<&'a str> {
    let dict = doc.descendants().find(|n| n.has_tag_name("dict"))?;
    let mut children = dict.children().filter(|n| n.is_element());
    while let Some(k) = children.next() {
        let v = children.next()?;
        if k.text() == Some(key) {
            return v.text().or(Some(v.tag_name().name()));
        }
    }
    None
}

#[test]
fn macos_plist_is_valid_and_names_its_icon() {
    let text = std::fs::read_to_string(root().join("macos/Info.plist")).unwrap();
    let doc = roxmltree::Document::parse_with_options(
        &text,
        roxmltree::ParsingOptions {
            allow_dtd: true,
            ..Default::default()
        },
    )
    .expect("macos/Info.plist is well-formed XML");
    assert_eq!(
        plist_value(&doc, "CFBundleIdentifier"),
        Some("io.github.mqtt-workbench")
    );
    assert_eq!(
        plist_value(&doc, "CFBundleExecutable"),
        Some("mqtt-workbench")
    );
    assert_eq!(
        plist_value(&doc, "CFBundleShortVersionString"),
        Some("@VERSION@")
    );
    assert_eq!(plist_value(&doc, "LSMinimumSystemVersion"), Some("11.0"));
    let icon = plist_value(&doc, "CFBundleIconFile").unwrap();
    let icns = std::fs::read(root().join("macos").join(format!("{icon}.icns"))).unwrap();
    assert_eq!(&icns[..4], b"icns", "a real .icns file");
}

#[test]
fn app_bundle_is_assembled_and_finds_its_scenarios() {
    let out = tempfile::tempdir().unwrap();
    let status = Command::new("bash")
        .arg(root().join("macos/build-app.sh"))
        .arg(out.path())
        .env("MQTT_WORKBENCH_BIN", env!("CARGO_BIN_EXE_mqtt-workbench"))
        .status()
        .unwrap();
    assert!(status.success());
    let app = out.path().join("MQTT Workbench.app/Contents");
    let exe = app.join("MacOS/mqtt-workbench");
    assert!(exe.is_file());
    let plist = std::fs::read_to_string(app.join("Info.plist")).unwrap();
    assert!(plist.contains(&format!("<string>{}</string>", env!("CARGO_PKG_VERSION"))));
    assert!(!plist.contains("@VERSION@"));
    assert!(app.join("Resources/AppIcon.icns").is_file());
    let mut bundled: Vec<String> = std::fs::read_dir(app.join("Resources/scenarios"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    bundled.sort();
    assert_eq!(bundled, shipped_scenarios());
    // The bundled executable finds the bundle's scenarios first.
    let listed = Command::new(&exe)
        .arg("scenarios")
        .current_dir("/")
        .output()
        .unwrap();
    let first = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    assert!(
        Path::new(&first).starts_with(app.join("MacOS/../Resources/scenarios")),
        "found {first}"
    );
}
