//! An AsyncAPI document as read from disk: YAML or JSON, with its `$ref`s
//! resolved within the file and to files beside it (relative paths). Remote
//! references (`http…`) are not fetched: they are named in a warning.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{ContractError, Warning};

/// Nested `$ref`s followed at most (a chain deeper than this is a warning).
const MAX_DEPTH: usize = 64;
/// Files one document may pull in through `$ref`s.
const MAX_FILES: usize = 64;
/// JSON values one resolution may produce: references that fan out (A refers
/// to B twice, B to C twice, …) would otherwise grow without bound.
const MAX_NODES: usize = 1_000_000;

/// The root document and every file it refers to.
pub struct Document {
    pub root: PathBuf,
    files: HashMap<PathBuf, Value>,
    pub warnings: Vec<Warning>,
    /// Values still allowed in resolved output ([`MAX_NODES`] in all).
    budget: usize,
}

impl Document {
    pub fn load(path: &Path) -> Result<Document, ContractError> {
        let root = path.to_path_buf();
        let value = read_file(&root)?;
        let mut files = HashMap::new();
        files.insert(root.clone(), value);
        Ok(Document {
            root,
            files,
            warnings: Vec::new(),
            budget: MAX_NODES,
        })
    }

    /// The root document (unresolved).
    pub fn value(&self) -> &Value {
        &self.files[&self.root]
    }

    /// The value at `pointer` of the root document with every `$ref` in it
    /// replaced by what it refers to (recursive references stop at the cycle,
    /// which becomes `{}` and a warning).
    pub fn resolved(&mut self, pointer: &str) -> Value {
        let root = self.root.clone();
        let Some(v) = self.files[&root].pointer(pointer).cloned() else {
            return Value::Null;
        };
        let mut stack = vec![(root.clone(), pointer.to_string())];
        self.deep(v, &root, pointer, &mut stack)
    }

    fn deep(
        &mut self,
        v: Value,
        file: &Path,
        at: &str,
        stack: &mut Vec<(PathBuf, String)>,
    ) -> Value {
        if self.budget == 0 {
            self.warn(
                "",
                format!("the document grows past {MAX_NODES} values with its $refs expanded: the rest is not expanded (any value passes there)"),
            );
            return Value::Object(serde_json::Map::new());
        }
        // Strings cost their length too: a long text copied by many references adds up.
        let cost = 1 + if let Value::String(t) = &v {
            t.len() / 16
        } else {
            0
        };
        self.budget = self.budget.saturating_sub(cost);
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    let r = r.clone();
                    return self.follow(&r, file, at, stack);
                }
                let mut out = serde_json::Map::new();
                for (k, v) in m {
                    let here = format!("{at}/{}", escape(&k));
                    let v = self.deep(v, file, &here, stack);
                    out.insert(k, v);
                }
                Value::Object(out)
            }
            Value::Array(a) => Value::Array(
                a.into_iter()
                    .enumerate()
                    .map(|(i, v)| self.deep(v, file, &format!("{at}/{i}"), stack))
                    .collect(),
            ),
            v => v,
        }
    }

    fn follow(
        &mut self,
        reference: &str,
        file: &Path,
        at: &str,
        stack: &mut Vec<(PathBuf, String)>,
    ) -> Value {
        let (target_file, pointer) = match self.target(reference, file) {
            Ok(t) => t,
            Err(why) => {
                self.warn(at, format!("$ref \"{reference}\": {why}; left unresolved"));
                return Value::Object(serde_json::Map::new());
            }
        };
        let key = (target_file.clone(), pointer.clone());
        if stack.contains(&key) || stack.len() >= MAX_DEPTH {
            self.warn(
                at,
                format!("$ref \"{reference}\" refers back to itself: the recursion is not expanded (any value passes there)"),
            );
            return Value::Object(serde_json::Map::new());
        }
        let Some(v) = self.files[&target_file].pointer(&pointer).cloned() else {
            self.warn(
                at,
                format!(
                    "$ref \"{reference}\": {} has nothing at \"{pointer}\"",
                    target_file.display()
                ),
            );
            return Value::Object(serde_json::Map::new());
        };
        stack.push(key);
        let v = self.deep(v, &target_file, at, stack);
        stack.pop();
        v
    }

    /// The file and JSON pointer a reference names, the file read if new.
    pub fn target(&mut self, reference: &str, from: &Path) -> Result<(PathBuf, String), String> {
        let (file_part, fragment) = reference.split_once('#').unwrap_or((reference, ""));
        if file_part.contains("://") {
            return Err("remote references are not fetched".into());
        }
        let file = if file_part.is_empty() {
            from.to_path_buf()
        } else {
            let base = from.parent().unwrap_or(Path::new("."));
            base.join(file_part)
        };
        if !self.files.contains_key(&file) {
            if self.files.len() >= MAX_FILES {
                return Err(format!("more than {MAX_FILES} files referenced"));
            }
            let v = read_file(&file).map_err(|e| e.to_string())?;
            self.files.insert(file.clone(), v);
        }
        Ok((file, unescape_uri(fragment)))
    }

    pub fn warn(&mut self, pointer: &str, what: String) {
        if self.warnings.len() < 1_000
            && !self
                .warnings
                .iter()
                .any(|w| w.pointer == pointer && w.what == what)
        {
            self.warnings.push(Warning {
                pointer: pointer.to_string(),
                what,
            });
        }
    }
}

/// A JSON pointer token for `key` (`~` and `/` escaped).
pub fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// A reference's fragment with its percent-escapes decoded (`%7B` → `{`).
fn unescape_uri(fragment: &str) -> String {
    let bytes = fragment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(hi * 16 + lo);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Read one file: JSON when it parses as JSON, YAML otherwise (errors with line and column).
/// Largest file a document (or a file it refers to) may be.
const MAX_FILE_BYTES: u64 = 64 << 20;

fn read_file(path: &Path) -> Result<Value, ContractError> {
    let meta = std::fs::metadata(path).map_err(|e| ContractError {
        path: path.to_path_buf(),
        line: 0,
        col: 0,
        message: format!("cannot read the file: {e}"),
    })?;
    if !meta.is_file() || meta.len() > MAX_FILE_BYTES {
        return Err(ContractError {
            path: path.to_path_buf(),
            line: 0,
            col: 0,
            message: format!(
                "not a document: expected a regular file of at most {} MiB",
                MAX_FILE_BYTES >> 20
            ),
        });
    }
    let text = std::fs::read_to_string(path).map_err(|e| ContractError {
        path: path.to_path_buf(),
        line: 0,
        col: 0,
        message: format!("cannot read the file: {e}"),
    })?;
    let looks_json =
        path.extension().is_some_and(|e| e == "json") || text.trim_start().starts_with('{');
    if looks_json {
        return serde_json::from_str(&text).map_err(|e| ContractError {
            path: path.to_path_buf(),
            line: e.line(),
            col: e.column(),
            message: format!("not valid JSON: {e}"),
        });
    }
    super::yaml::parse(&text).map_err(|e| ContractError {
        path: path.to_path_buf(),
        line: e.line,
        col: e.col,
        message: format!("not valid YAML: {}", e.message),
    })
}
