//! YAML read as JSON values and written from them (yaml-rust2), so one
//! loader reads AsyncAPI documents in either form.

use serde_json::{Map, Number, Value};
use yaml_rust2::{Yaml, YamlEmitter, YamlLoader};

/// Where YAML text stopped making sense: 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

/// The first document of `text` as a JSON value.
pub fn parse(text: &str) -> Result<Value, YamlError> {
    let docs = YamlLoader::load_from_str(text).map_err(|e| YamlError {
        line: e.marker().line(),
        col: e.marker().col() + 1,
        message: e.info().to_string(),
    })?;
    let doc = docs.into_iter().next().unwrap_or(Yaml::Null);
    if depth(&doc, 0) > MAX_DEPTH {
        return Err(YamlError {
            line: 1,
            col: 1,
            message: format!("nested deeper than {MAX_DEPTH} levels"),
        });
    }
    Ok(to_json(doc))
}

/// Nesting a document may have (the conversion below recurses).
const MAX_DEPTH: usize = 256;

fn depth(y: &Yaml, d: usize) -> usize {
    if d > MAX_DEPTH {
        return d;
    }
    match y {
        Yaml::Array(a) => a.iter().map(|x| depth(x, d + 1)).max().unwrap_or(d),
        Yaml::Hash(h) => h.values().map(|x| depth(x, d + 1)).max().unwrap_or(d),
        _ => d,
    }
}

fn to_json(y: Yaml) -> Value {
    match y {
        Yaml::Real(s) => s
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map_or(Value::String(s), Value::Number),
        Yaml::Integer(i) => Value::from(i),
        Yaml::String(s) => Value::String(s),
        Yaml::Boolean(b) => Value::Bool(b),
        Yaml::Array(a) => Value::Array(a.into_iter().map(to_json).collect()),
        Yaml::Hash(h) => {
            let mut m = Map::new();
            for (k, v) in h {
                let key = match k {
                    Yaml::String(s) | Yaml::Real(s) => s,
                    Yaml::Integer(i) => i.to_string(),
                    Yaml::Boolean(b) => b.to_string(),
                    _ => continue,
                };
                m.insert(key, to_json(v));
            }
            Value::Object(m)
        }
        Yaml::Null | Yaml::Alias(_) | Yaml::BadValue => Value::Null,
    }
}

fn to_yaml(v: &Value) -> Yaml {
    match v {
        Value::Null => Yaml::Null,
        Value::Bool(b) => Yaml::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Yaml::Integer(i),
            None => Yaml::Real(n.to_string()),
        },
        Value::String(s) => Yaml::String(s.clone()),
        Value::Array(a) => Yaml::Array(a.iter().map(to_yaml).collect()),
        Value::Object(m) => {
            let mut h = yaml_rust2::yaml::Hash::new();
            for (k, v) in m {
                h.insert(Yaml::String(k.clone()), to_yaml(v));
            }
            Yaml::Hash(h)
        }
    }
}

/// A JSON value as YAML text (keys in the value's order).
pub fn write(v: &Value) -> String {
    let mut out = String::new();
    let mut emitter = YamlEmitter::new(&mut out);
    if let Err(e) = emitter.dump(&to_yaml(v)) {
        return format!("# cannot write this document as YAML: {e}\n");
    }
    // The emitter starts with a document marker and ends without a newline.
    let body = out.strip_prefix("---\n").unwrap_or(&out);
    format!("{body}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_reads_as_json_and_writes_back_the_same_value() {
        let v = parse("a: 1\nb: [x, 2.5, true, null]\nc: {d: '3'}\n200: ok\n").unwrap();
        assert_eq!(
            v,
            serde_json::json!({"a": 1, "b": ["x", 2.5, true, null], "c": {"d": "3"}, "200": "ok"})
        );
        assert_eq!(parse(&write(&v)).unwrap(), v);
        let e = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(e.line >= 1 && e.col >= 1, "{e:?}");
    }
}
