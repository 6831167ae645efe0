//! `mqtt-workbench query`: read-only SQL over a capture database, as CSV or
//! JSON Lines on standard output.

use std::io::Write as _;
use std::path::Path;

use crate::database::QueryResult;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum QueryFormat {
    Csv,
    Jsonl,
}

pub fn query(file: &Path, sql: &str, format: QueryFormat, max_rows: usize) -> anyhow::Result<()> {
    let result = crate::database::query(file, sql, max_rows)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    out.write_all(render(&result, format)?.as_bytes())?;
    out.flush()?;
    if result.truncated {
        eprintln!("(stopped after {max_rows} rows; raise --max-rows for more)");
    }
    Ok(())
}

/// The rows as text: CSV with a header line, or one JSON object per row.
pub fn render(result: &QueryResult, format: QueryFormat) -> anyhow::Result<String> {
    match format {
        QueryFormat::Csv => {
            let mut w = csv::Writer::from_writer(Vec::new());
            w.write_record(&result.columns)?;
            for row in &result.rows {
                w.write_record(row.iter().map(|v| v.to_string()))?;
            }
            Ok(String::from_utf8(w.into_inner()?)?)
        }
        QueryFormat::Jsonl => {
            let mut s = String::new();
            // Written by hand so the keys keep the query's column order.
            for row in &result.rows {
                s.push('{');
                for (k, (c, v)) in result.columns.iter().zip(row).enumerate() {
                    if k > 0 {
                        s.push(',');
                    }
                    s += &serde_json::to_string(c)?;
                    s.push(':');
                    s += &serde_json::to_string(v)?;
                }
                s += "}\n";
            }
            Ok(s)
        }
    }
}
