//! The test report as JUnit XML.

use std::path::PathBuf;
use std::time::Duration;

use crate::checks::{Verdict, VerdictState};

/// One scenario's verdicts, for the report.
pub struct SuiteResult {
    pub name: String,
    pub file: PathBuf,
    pub elapsed: Duration,
    pub verdicts: Vec<Verdict>,
    /// Why it could not run at all (then `verdicts` is empty).
    pub error: Option<String>,
}

/// JUnit XML as CI systems read it: one testsuite per scenario, one testcase
/// per expectation; failures carry the evidence, not-triggered ones are skipped.
pub fn junit_xml(suites: &[SuiteResult]) -> anyhow::Result<String> {
    use quick_xml::events::{BytesDecl, BytesText, Event as X};
    let mut w = quick_xml::Writer::new_with_indent(Vec::new(), b' ', 2);
    w.write_event(X::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    let count =
        |s: &SuiteResult, st: VerdictState| s.verdicts.iter().filter(|v| v.state == st).count();
    let tests: usize = suites.iter().map(|s| s.verdicts.len().max(1)).sum();
    let failures: usize = suites.iter().map(|s| count(s, VerdictState::Failed)).sum();
    let errors: usize = suites.iter().filter(|s| s.error.is_some()).count();
    w.create_element("testsuites")
        .with_attribute(("name", "mqtt-workbench"))
        .with_attribute(("tests", tests.to_string().as_str()))
        .with_attribute(("failures", failures.to_string().as_str()))
        .with_attribute(("errors", errors.to_string().as_str()))
        .write_inner_content(|w| {
            for s in suites {
                let file = s.file.display().to_string();
                w.create_element("testsuite")
                    .with_attribute(("name", s.name.as_str()))
                    .with_attribute(("file", file.as_str()))
                    .with_attribute(("tests", s.verdicts.len().max(1).to_string().as_str()))
                    .with_attribute((
                        "failures",
                        count(s, VerdictState::Failed).to_string().as_str(),
                    ))
                    .with_attribute(("errors", (s.error.is_some() as usize).to_string().as_str()))
                    .with_attribute((
                        "skipped",
                        count(s, VerdictState::NotTriggered).to_string().as_str(),
                    ))
                    .with_attribute(("time", format!("{:.3}", s.elapsed.as_secs_f64()).as_str()))
                    .write_inner_content(|w| {
                        if let Some(e) = &s.error {
                            w.create_element("testcase")
                                .with_attribute(("name", "scenario"))
                                .with_attribute(("classname", s.name.as_str()))
                                .write_inner_content(|w| {
                                    w.create_element("error")
                                        .with_attribute(("message", e.as_str()))
                                        .write_text_content(BytesText::new(e))?;
                                    Ok(())
                                })?;
                        }
                        for v in &s.verdicts {
                            let case = w
                                .create_element("testcase")
                                .with_attribute(("name", v.name.as_str()))
                                .with_attribute(("classname", s.name.as_str()));
                            match v.state {
                                VerdictState::Failed => {
                                    case.write_inner_content(|w| {
                                        w.create_element("failure")
                                            .with_attribute(("message", v.evidence.as_str()))
                                            .write_text_content(BytesText::new(&v.evidence))?;
                                        Ok(())
                                    })?;
                                }
                                VerdictState::NotTriggered | VerdictState::Pending => {
                                    case.write_inner_content(|w| {
                                        w.create_element("skipped")
                                            .with_attribute(("message", v.evidence.as_str()))
                                            .write_empty()?;
                                        Ok(())
                                    })?;
                                }
                                VerdictState::Passed => {
                                    case.write_inner_content(|w| {
                                        w.create_element("system-out")
                                            .write_text_content(BytesText::new(&v.evidence))?;
                                        Ok(())
                                    })?;
                                }
                            }
                        }
                        Ok(())
                    })?;
            }
            Ok(())
        })?;
    Ok(String::from_utf8(w.into_inner())?)
}
