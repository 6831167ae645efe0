//! What changed between two payloads on a topic. Anything the decoders read
//! as a tree (JSON, Sparkplug B, CBOR, MessagePack, Protobuf) is compared
//! field by field, with each change at its JSON pointer; other text line by
//! line (the `similar` crate's diff); binary payloads by size and the first
//! byte that differs.

use serde_json::Value;

use super::Decoders;

/// One field that differs, at its JSON pointer (`/battery`, `/metrics/2/value`).
#[derive(Debug, Clone, PartialEq)]
pub enum FieldChange {
    Added {
        path: String,
        now: Value,
    },
    Removed {
        path: String,
        was: Value,
    },
    Changed {
        path: String,
        was: Value,
        now: Value,
    },
}

impl FieldChange {
    pub fn path(&self) -> &str {
        match self {
            FieldChange::Added { path, .. }
            | FieldChange::Removed { path, .. }
            | FieldChange::Changed { path, .. } => path,
        }
    }
}

/// One line of a text diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineChange {
    Same(String),
    Added(String),
    Removed(String),
}

/// How a payload differs from the one before it.
#[derive(Debug, Clone, PartialEq)]
pub enum PayloadDiff {
    /// Byte for byte the same.
    Same,
    /// Both decode as trees: the fields that differ (empty: the same tree,
    /// written differently).
    Fields(Vec<FieldChange>),
    /// Both are text, and not trees.
    Lines(Vec<LineChange>),
    /// Binary: the sizes and the first offset that differs.
    Bytes {
        was: usize,
        now: usize,
        first_difference: usize,
    },
}

/// Changes listed at most; the rest are counted by the caller from the length.
const MAX_CHANGES: usize = 1_000;

/// Compare `now` with `was`, both on `topic` (the decoders pick the codec).
pub fn diff(decoders: &Decoders, topic: &str, was: &[u8], now: &[u8]) -> PayloadDiff {
    if was == now {
        return PayloadDiff::Same;
    }
    if let (Some(a), Some(b)) = (decoders.decode(topic, was), decoders.decode(topic, now))
        && (a.is_object() || a.is_array())
        && (b.is_object() || b.is_array())
    {
        let mut out = Vec::new();
        fields(&a, &b, &mut String::new(), &mut out);
        return PayloadDiff::Fields(out);
    }
    match (std::str::from_utf8(was), std::str::from_utf8(now)) {
        (Ok(a), Ok(b)) => PayloadDiff::Lines(lines(a, b)),
        _ => PayloadDiff::Bytes {
            was: was.len(),
            now: now.len(),
            first_difference: was
                .iter()
                .zip(now)
                .position(|(x, y)| x != y)
                .unwrap_or(was.len().min(now.len())),
        },
    }
}

/// JSON pointer escaping (RFC 6901): `~` → `~0`, `/` → `~1`.
fn push_key(path: &mut String, key: &str) {
    path.push('/');
    for c in key.chars() {
        match c {
            '~' => path.push_str("~0"),
            '/' => path.push_str("~1"),
            c => path.push(c),
        }
    }
}

fn fields(was: &Value, now: &Value, path: &mut String, out: &mut Vec<FieldChange>) {
    if out.len() >= MAX_CHANGES {
        return;
    }
    let here = path.len();
    match (was, now) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, va) in a {
                push_key(path, k);
                match b.get(k) {
                    Some(vb) => fields(va, vb, path, out),
                    None => out.push(FieldChange::Removed {
                        path: path.clone(),
                        was: va.clone(),
                    }),
                }
                path.truncate(here);
            }
            for (k, vb) in b.iter().filter(|(k, _)| !a.contains_key(*k)) {
                push_key(path, k);
                out.push(FieldChange::Added {
                    path: path.clone(),
                    now: vb.clone(),
                });
                path.truncate(here);
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for i in 0..a.len().max(b.len()) {
                push_key(path, &i.to_string());
                match (a.get(i), b.get(i)) {
                    (Some(va), Some(vb)) => fields(va, vb, path, out),
                    (Some(va), None) => out.push(FieldChange::Removed {
                        path: path.clone(),
                        was: va.clone(),
                    }),
                    (None, Some(vb)) => out.push(FieldChange::Added {
                        path: path.clone(),
                        now: vb.clone(),
                    }),
                    (None, None) => {}
                }
                path.truncate(here);
            }
        }
        (a, b) if a != b => out.push(FieldChange::Changed {
            path: if path.is_empty() {
                "/".into()
            } else {
                path.clone()
            },
            was: a.clone(),
            now: b.clone(),
        }),
        _ => {}
    }
}

fn lines(was: &str, now: &str) -> Vec<LineChange> {
    let diff = similar::TextDiff::from_lines(was, now);
    diff.iter_all_changes()
        .take(MAX_CHANGES)
        .map(|c| {
            let text = c.value().trim_end_matches(['\n', '\r']).to_string();
            match c.tag() {
                similar::ChangeTag::Equal => LineChange::Same(text),
                similar::ChangeTag::Insert => LineChange::Added(text),
                similar::ChangeTag::Delete => LineChange::Removed(text),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn json_diff(a: &str, b: &str) -> PayloadDiff {
        diff(&Decoders::default(), "t", a.as_bytes(), b.as_bytes())
    }

    #[test]
    fn json_fields_are_compared_by_pointer_whatever_their_order() {
        let d = json_diff(
            r#"{"speed": 42.5, "pos": {"lat": 48.1, "lon": 11.5}, "doors": ["shut", "shut"], "a/b": 1}"#,
            r#"{"pos": {"lon": 11.6, "lat": 48.1}, "speed": 42.5, "doors": ["open"], "fuel": 30, "a/b": 2}"#,
        );
        let PayloadDiff::Fields(changes) = d else {
            panic!("{d:?}")
        };
        assert_eq!(
            changes,
            [
                FieldChange::Changed {
                    path: "/a~1b".into(),
                    was: json!(1),
                    now: json!(2)
                },
                FieldChange::Changed {
                    path: "/doors/0".into(),
                    was: json!("shut"),
                    now: json!("open")
                },
                FieldChange::Removed {
                    path: "/doors/1".into(),
                    was: json!("shut")
                },
                FieldChange::Changed {
                    path: "/pos/lon".into(),
                    was: json!(11.5),
                    now: json!(11.6)
                },
                FieldChange::Added {
                    path: "/fuel".into(),
                    now: json!(30)
                },
            ]
        );
        // Reordered and reformatted, the same tree: no field changes.
        assert_eq!(
            json_diff(r#"{"a":1,"b":2}"#, "{ \"b\": 2,\n \"a\": 1 }"),
            PayloadDiff::Fields(vec![])
        );
        assert_eq!(json_diff("{}", "{}"), PayloadDiff::Same);
    }

    #[test]
    fn text_is_compared_by_line_and_binary_by_size_and_offset() {
        assert_eq!(
            json_diff("on\nmode=eco\n", "on\nmode=boost\n"),
            PayloadDiff::Lines(vec![
                LineChange::Same("on".into()),
                LineChange::Removed("mode=eco".into()),
                LineChange::Added("mode=boost".into()),
            ])
        );
        // Numbers are JSON, but not trees: a line diff says more than a root change.
        assert_eq!(
            json_diff("21.5", "22"),
            PayloadDiff::Lines(vec![
                LineChange::Removed("21.5".into()),
                LineChange::Added("22".into()),
            ])
        );
        assert_eq!(
            diff(&Decoders::default(), "t", &[0, 1, 2, 0xff], &[0, 1, 9]),
            PayloadDiff::Bytes {
                was: 4,
                now: 3,
                first_difference: 2
            }
        );
    }
}
