//! Where in the file an error is: a parse or validation error with its
//! line and column, and RON's errors in words.

use std::path::PathBuf;

/// A parse or validation error, located in its file.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
#[error("{}:{line}:{col}: {message}", path.display())]
pub struct ScenarioError {
    pub path: PathBuf,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

/// Like [`locate`], but the first occurrence after the device's `id: "…"`
/// (an error names the device it is in, not another one).
pub(super) fn locate_in_device(text: &str, device_id: &str, needle: &str) -> (usize, usize) {
    let start = text.find(&format!("\"{device_id}\"")).unwrap_or(0);
    match text[start..].find(needle) {
        Some(at) => position(text, start + at),
        None => locate(text, needle),
    }
}

/// 1-based line and column of byte offset `at` in `text`.
pub(super) fn position(text: &str, at: usize) -> (usize, usize) {
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// 1-based line and column of the first occurrence of `needle` (1:1 if absent).
pub(super) fn locate(text: &str, needle: &str) -> (usize, usize) {
    match text.find(needle) {
        Some(at) => {
            let before = &text[..at];
            let line = before.matches('\n').count() + 1;
            let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            (line, col)
        }
        None => (1, 1),
    }
}

pub(super) fn describe_ron_error(code: &ron::Error) -> String {
    match code {
        ron::Error::NoSuchStructField {
            expected,
            found,
            outer,
        } => format!(
            "unknown field `{found}`{}; expected one of: {}",
            outer
                .as_ref()
                .map(|o| format!(" in {o}"))
                .unwrap_or_default(),
            expected.join(", ")
        ),
        ron::Error::MissingStructField { field, outer } => format!(
            "missing field `{field}`{}",
            outer
                .as_ref()
                .map(|o| format!(" in {o}"))
                .unwrap_or_default()
        ),
        ron::Error::NoSuchEnumVariant {
            expected,
            found,
            outer,
        } => format!(
            "unknown variant `{found}`{}; expected one of: {}",
            outer
                .as_ref()
                .map(|o| format!(" in {o}"))
                .unwrap_or_default(),
            expected.join(", ")
        ),
        other => other.to_string(),
    }
}
