//! Records the locked versions of the main components for --version and About.

fn main() {
    println!("cargo:rerun-if-changed=Cargo.lock");
    let lock = std::fs::read_to_string("Cargo.lock").unwrap_or_default();
    for name in ["rumqttd", "rumqttc", "egui", "eframe"] {
        let version = locked_version(&lock, name).unwrap_or_else(|| "unknown".into());
        println!(
            "cargo:rustc-env=MQTT_WORKBENCH_{}_VERSION={version}",
            name.to_uppercase()
        );
    }
}

fn locked_version(lock: &str, name: &str) -> Option<String> {
    let needle = format!("name = \"{name}\"\nversion = \"");
    let start = lock.find(&needle)? + needle.len();
    let end = lock[start..].find('"')? + start;
    Some(lock[start..end].to_string())
}
