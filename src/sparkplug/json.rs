//! A Sparkplug B payload as the JSON tree the inspectors show: metrics by
//! name (aliases resolved from the BIRTH), each with its value, type,
//! alias, timestamp, flags, metadata and property set; data sets as columns
//! and rows, templates with their parameters and metrics, and the 3.0 array
//! types decoded from their packed bytes (Sparkplug B 3.0, 6.4.17).

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::proto::{self as sp, Cell, ParameterValue, PropertyKind};

/// Elements of a 3.0 array shown at most (a 1 MiB BooleanArray holds 8 million).
const MAX_ARRAY: usize = 1_000;

/// Metrics nested in templates are read this deep at most.
const MAX_DEPTH: usize = 8;

/// The decoded payload: `message` (its type), `timestamp`, `seq`, `uuid`,
/// `metrics` by name.
pub fn payload(
    p: &sp::Payload,
    kind: Option<&str>,
    book: Option<&HashMap<u64, (String, u32)>>,
) -> Value {
    let mut out = Map::new();
    if let Some(kind) = kind {
        out.insert("message".into(), json!(kind));
    }
    if let Some(t) = p.timestamp {
        out.insert("timestamp".into(), json!(t));
    }
    if let Some(s) = p.seq {
        out.insert("seq".into(), json!(s));
    }
    if let Some(u) = &p.uuid {
        out.insert("uuid".into(), json!(u));
    }
    out.insert("metrics".into(), metrics(&p.metrics, book, 0));
    if let Some(b) = &p.body {
        out.insert("body".into(), json!(format!("{} bytes", b.len())));
    }
    Value::Object(out)
}

fn metrics(list: &[sp::Metric], book: Option<&HashMap<u64, (String, u32)>>, depth: usize) -> Value {
    let mut out = Map::new();
    for (k, m) in list.iter().enumerate() {
        let learned = m.alias.and_then(|a| book.and_then(|b| b.get(&a)));
        let name = m
            .name
            .clone()
            .or_else(|| learned.map(|(n, _)| n.clone()))
            .unwrap_or_else(|| match m.alias {
                Some(a) => format!("alias {a} (no BIRTH seen)"),
                None => format!("metric {k}"),
            });
        let datatype = m.datatype.or(learned.map(|(_, t)| *t)).unwrap_or(0);
        out.insert(name, metric(m, datatype, depth));
    }
    Value::Object(out)
}

fn metric(m: &sp::Metric, datatype: u32, depth: usize) -> Value {
    let mut entry = Map::new();
    entry.insert("value".into(), metric_value(m, datatype, depth));
    entry.insert("type".into(), json!(sp::type_name(datatype)));
    if let Some(a) = m.alias {
        entry.insert("alias".into(), json!(a));
    }
    if let Some(t) = m.timestamp {
        entry.insert("timestamp".into(), json!(t));
    }
    if m.is_historical == Some(true) {
        entry.insert("historical".into(), json!(true));
    }
    if m.is_transient == Some(true) {
        entry.insert("transient".into(), json!(true));
    }
    if let Some(md) = &m.metadata {
        entry.insert("metadata".into(), metadata(md));
    }
    if let Some(props) = &m.properties {
        entry.insert("properties".into(), property_set(props, 0));
    }
    Value::Object(entry)
}

fn metadata(md: &sp::MetaData) -> Value {
    let mut o = Map::new();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            o.insert(k.into(), v);
        }
    };
    put("multi_part", md.is_multi_part.map(Value::from));
    put("content_type", md.content_type.clone().map(Value::from));
    put("size", md.size.map(Value::from));
    put("seq", md.seq.map(Value::from));
    put("file_name", md.file_name.clone().map(Value::from));
    put("file_type", md.file_type.clone().map(Value::from));
    put("md5", md.md5.clone().map(Value::from));
    put("description", md.description.clone().map(Value::from));
    Value::Object(o)
}

/// A property set as `{key: value}` (`engUnit`, `engLow`, … as the edge node names them).
fn property_set(ps: &sp::PropertySet, depth: usize) -> Value {
    let mut o = Map::new();
    for (k, v) in ps.keys.iter().zip(&ps.values) {
        let value = if v.is_null == Some(true) || depth >= MAX_DEPTH {
            Value::Null
        } else {
            let t = v.datatype.unwrap_or(0);
            match &v.value {
                Some(PropertyKind::IntValue(x)) => int32(*x, t),
                Some(PropertyKind::LongValue(x)) => int64(*x, t),
                Some(PropertyKind::FloatValue(x)) => float(*x),
                Some(PropertyKind::DoubleValue(x)) => json!(x),
                Some(PropertyKind::BooleanValue(x)) => json!(x),
                Some(PropertyKind::StringValue(x)) => json!(x),
                Some(PropertyKind::PropertysetValue(p)) => property_set(p, depth + 1),
                Some(PropertyKind::PropertysetsValue(l)) => Value::Array(
                    l.propertyset
                        .iter()
                        .map(|p| property_set(p, depth + 1))
                        .collect(),
                ),
                None => Value::Null,
            }
        };
        o.insert(k.clone(), value);
    }
    Value::Object(o)
}

/// A 32-bit float as its shortest decimal (61.57852, not 61.578521728515625).
fn float(v: f32) -> Value {
    if !v.is_finite() {
        return Value::Null;
    }
    json!(v.to_string().parse::<f64>().unwrap_or(f64::from(v)))
}

/// Signed types travel as two's complement in the unsigned fields.
fn int32(v: u32, datatype: u32) -> Value {
    match datatype {
        1 => json!(v as u8 as i8),
        2 => json!(v as u16 as i16),
        3 => json!(v as i32),
        _ => json!(v),
    }
}

fn int64(v: u64, datatype: u32) -> Value {
    match datatype {
        4 => json!(v as i64),
        _ => json!(v),
    }
}

/// A metric's value as its data type says (the Sparkplug view's value column).
pub fn value(m: &sp::Metric, datatype: u32) -> Value {
    metric_value(m, datatype, 0)
}

/// A metric's value as its Sparkplug data type says.
fn metric_value(m: &sp::Metric, datatype: u32, depth: usize) -> Value {
    use sp::Value as V;
    if m.is_null == Some(true) {
        return Value::Null;
    }
    match &m.value {
        Some(V::IntValue(v)) => int32(*v, datatype),
        Some(V::LongValue(v)) => int64(*v, datatype),
        Some(V::FloatValue(v)) => float(*v),
        Some(V::DoubleValue(v)) => json!(v),
        Some(V::BooleanValue(v)) => json!(v),
        Some(V::StringValue(v)) => json!(v),
        Some(V::BytesValue(v)) => {
            array(v, datatype).unwrap_or_else(|| json!(format!("{} bytes", v.len())))
        }
        Some(V::DatasetValue(d)) => dataset(d),
        Some(V::TemplateValue(t)) => template(t, depth),
        None => Value::Null,
    }
}

fn dataset(d: &sp::DataSet) -> Value {
    let rows: Vec<Value> = d
        .rows
        .iter()
        .map(|r| {
            Value::Array(
                r.elements
                    .iter()
                    .zip(d.types.iter().chain(std::iter::repeat(&0)))
                    .map(|(e, t)| match &e.value {
                        Some(Cell::IntValue(x)) => int32(*x, *t),
                        Some(Cell::LongValue(x)) => int64(*x, *t),
                        Some(Cell::FloatValue(x)) => float(*x),
                        Some(Cell::DoubleValue(x)) => json!(x),
                        Some(Cell::BooleanValue(x)) => json!(x),
                        Some(Cell::StringValue(x)) => json!(x),
                        None => Value::Null,
                    })
                    .collect(),
            )
        })
        .collect();
    json!({
        "columns": d.columns,
        "types": d.types.iter().map(|t| sp::type_name(*t)).collect::<Vec<_>>(),
        "rows": rows,
    })
}

fn template(t: &sp::Template, depth: usize) -> Value {
    let mut o = Map::new();
    if let Some(v) = &t.version {
        o.insert("version".into(), json!(v));
    }
    if let Some(r) = &t.template_ref {
        o.insert("template_ref".into(), json!(r));
    }
    if t.is_definition == Some(true) {
        o.insert("definition".into(), json!(true));
    }
    let mut params = Map::new();
    for (k, p) in t.parameters.iter().enumerate() {
        let name = p.name.clone().unwrap_or_else(|| format!("parameter {k}"));
        let dt = p.datatype.unwrap_or(0);
        let v = match &p.value {
            Some(ParameterValue::IntValue(x)) => int32(*x, dt),
            Some(ParameterValue::LongValue(x)) => int64(*x, dt),
            Some(ParameterValue::FloatValue(x)) => float(*x),
            Some(ParameterValue::DoubleValue(x)) => json!(x),
            Some(ParameterValue::BooleanValue(x)) => json!(x),
            Some(ParameterValue::StringValue(x)) => json!(x),
            None => Value::Null,
        };
        params.insert(name, v);
    }
    if !params.is_empty() {
        o.insert("parameters".into(), Value::Object(params));
    }
    if depth < MAX_DEPTH {
        o.insert("metrics".into(), metrics(&t.metrics, None, depth + 1));
    }
    Value::Object(o)
}

/// The 3.0 array types (22–34): little-endian values packed in `bytes_value`;
/// BooleanArray is a 4-byte count then bits, first value in the high bit;
/// StringArray is NUL-terminated UTF-8 strings.
fn array(b: &[u8], datatype: u32) -> Option<Value> {
    fn chunks<const N: usize>(b: &[u8]) -> Option<impl Iterator<Item = [u8; N]> + '_> {
        b.len().is_multiple_of(N).then(|| {
            b.chunks_exact(N)
                .map(|c| <[u8; N]>::try_from(c).unwrap_or([0; N]))
        })
    }
    let mut values: Vec<Value> = match datatype {
        22 => b.iter().map(|x| json!(*x as i8)).take(MAX_ARRAY).collect(),
        23 => chunks::<2>(b)?
            .map(|c| json!(i16::from_le_bytes(c)))
            .take(MAX_ARRAY)
            .collect(),
        24 => chunks::<4>(b)?
            .map(|c| json!(i32::from_le_bytes(c)))
            .take(MAX_ARRAY)
            .collect(),
        25 | 34 => chunks::<8>(b)?
            .map(|c| json!(i64::from_le_bytes(c)))
            .take(MAX_ARRAY)
            .collect(),
        26 => b.iter().map(|x| json!(x)).take(MAX_ARRAY).collect(),
        27 => chunks::<2>(b)?
            .map(|c| json!(u16::from_le_bytes(c)))
            .take(MAX_ARRAY)
            .collect(),
        28 => chunks::<4>(b)?
            .map(|c| json!(u32::from_le_bytes(c)))
            .take(MAX_ARRAY)
            .collect(),
        29 => chunks::<8>(b)?
            .map(|c| json!(u64::from_le_bytes(c)))
            .take(MAX_ARRAY)
            .collect(),
        30 => chunks::<4>(b)?
            .map(|c| float(f32::from_le_bytes(c)))
            .take(MAX_ARRAY)
            .collect(),
        31 => chunks::<8>(b)?
            .map(|c| json!(f64::from_le_bytes(c)))
            .take(MAX_ARRAY)
            .collect(),
        32 => {
            let n = u32::from_le_bytes(b.get(..4)?.try_into().ok()?) as usize;
            let bits = &b[4..];
            if n > bits.len() * 8 {
                return None;
            }
            (0..n.min(MAX_ARRAY))
                .map(|i| json!(bits[i / 8] >> (7 - i % 8) & 1 == 1))
                .collect()
        }
        33 => {
            let body = b.strip_suffix(&[0])?;
            body.split(|c| *c == 0)
                .take(MAX_ARRAY)
                .map(|s| std::str::from_utf8(s).ok().map(|s| json!(s)))
                .collect::<Option<_>>()?
        }
        _ => return None,
    };
    // What was left out past the bound, said in one last element.
    let total = match datatype {
        22 | 26 => b.len(),
        23 | 27 => b.len() / 2,
        24 | 28 | 30 => b.len() / 4,
        32 => b.get(..4).map_or(0, |c| {
            u32::from_le_bytes(c.try_into().unwrap_or([0; 4])) as usize
        }),
        33 => b.iter().filter(|c| **c == 0).count(),
        _ => b.len() / 8,
    };
    if total > values.len() {
        let more = total - values.len();
        values.push(json!(format!("… {more} more")));
    }
    Some(Value::Array(values))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_show_as_the_shortest_decimal_that_reads_back_the_same() {
        let m = sp::Metric {
            value: Some(sp::Value::FloatValue(60.57852)),
            ..Default::default()
        };
        assert_eq!(value(&m, 9).to_string(), "60.57852");
        assert_eq!(float(f32::NAN), Value::Null);
    }

    #[test]
    fn long_arrays_show_their_first_thousand_and_say_how_many_more() {
        let mut bits = 1_000_000u32.to_le_bytes().to_vec();
        bits.extend(vec![0xff; 125_000]);
        let m = sp::Metric {
            value: Some(sp::Value::BytesValue(bits)),
            ..Default::default()
        };
        let v = value(&m, 32);
        let items = v.as_array().expect("an array");
        assert_eq!(items.len(), MAX_ARRAY + 1);
        assert_eq!(items[0], true);
        assert_eq!(items[MAX_ARRAY], "… 999000 more");
    }

    fn one(m: sp::Metric) -> Value {
        let p = sp::Payload {
            metrics: vec![m],
            ..Default::default()
        };
        payload(&p, Some("DBIRTH"), None)["metrics"]["m"].clone()
    }

    fn named(datatype: u32, value: sp::Value) -> sp::Metric {
        sp::Metric {
            name: Some("m".into()),
            datatype: Some(datatype),
            value: Some(value),
            ..Default::default()
        }
    }

    #[test]
    fn arrays_datasets_templates_properties_and_metadata_decode() {
        let floats: Vec<u8> = [1.5f32, -2.0]
            .iter()
            .flat_map(|f| f.to_le_bytes())
            .collect();
        assert_eq!(
            one(named(30, sp::Value::BytesValue(floats)))["value"],
            json!([1.5, -2.0])
        );
        let ints: Vec<u8> = [-3i16, 7].iter().flat_map(|f| f.to_le_bytes()).collect();
        assert_eq!(
            one(named(23, sp::Value::BytesValue(ints)))["value"],
            json!([-3, 7])
        );
        // Three booleans: true, false, true in the high bits.
        let bools = vec![3, 0, 0, 0, 0b1010_0000];
        assert_eq!(
            one(named(32, sp::Value::BytesValue(bools)))["value"],
            json!([true, false, true])
        );
        assert_eq!(
            one(named(33, sp::Value::BytesValue(b"ab\0c\0".to_vec())))["value"],
            json!(["ab", "c"])
        );
        // A broken array shows its size, not garbage.
        assert_eq!(
            one(named(24, sp::Value::BytesValue(vec![1, 2, 3])))["value"],
            json!("3 bytes")
        );
        let ds = sp::DataSet {
            num_of_columns: Some(2),
            columns: vec!["t".into(), "ok".into()],
            types: vec![3, 11],
            rows: vec![sp::Row {
                elements: vec![
                    sp::DataSetValue {
                        value: Some(Cell::IntValue((-5i32) as u32)),
                    },
                    sp::DataSetValue {
                        value: Some(Cell::BooleanValue(true)),
                    },
                ],
            }],
        };
        let v = one(named(16, sp::Value::DatasetValue(ds)));
        assert_eq!(v["value"]["rows"], json!([[-5, true]]));
        assert_eq!(v["value"]["types"], json!(["Int32", "Boolean"]));
        let t = sp::Template {
            version: Some("v1".into()),
            template_ref: Some("Motor".into()),
            parameters: vec![sp::Parameter {
                name: Some("rated".into()),
                datatype: Some(10),
                value: Some(ParameterValue::DoubleValue(7.5)),
            }],
            metrics: vec![named(9, sp::Value::FloatValue(2.5))],
            ..Default::default()
        };
        let v = one(named(19, sp::Value::TemplateValue(t)));
        assert_eq!(v["value"]["parameters"]["rated"], json!(7.5));
        assert_eq!(v["value"]["metrics"]["m"]["value"], json!(2.5));
        let mut m = named(9, sp::Value::FloatValue(21.0));
        m.properties = Some(sp::PropertySet {
            keys: vec!["engUnit".into()],
            values: vec![sp::PropertyValue {
                datatype: Some(12),
                is_null: None,
                value: Some(PropertyKind::StringValue("°C".into())),
            }],
        });
        m.metadata = Some(sp::MetaData {
            description: Some("inlet".into()),
            ..Default::default()
        });
        let v = one(m);
        assert_eq!(v["properties"]["engUnit"], json!("°C"));
        assert_eq!(v["metadata"]["description"], json!("inlet"));
    }
}
