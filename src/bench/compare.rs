//! `bench --transport tcp,ws,wss`: the same fleet over each transport, one
//! after another in one process, set side by side.

use super::BenchReport;
use crate::scenario::Transport;

/// One row a transport: CPU per 1k messages, delivered rate, memory per idle
/// device, and the CPU as a multiple of the first transport's.
pub fn transports_table(rows: &[(Transport, BenchReport)]) -> String {
    let mut out = String::from(
        "transport  CPU per 1k msgs  delivered msg/s  idle KiB/device  CPU vs first\n",
    );
    let first = rows.first().map(|(_, r)| r.cpu_s_per_1k);
    for (t, r) in rows {
        let idle = r
            .idle_kib_per_device
            .map_or_else(|| "—".to_string(), |k| format!("{k:.1}"));
        let ratio = match first {
            Some(f) if f > 0.0 && r.cpu_s_per_1k.is_finite() => {
                format!("×{:.2}", r.cpu_s_per_1k / f)
            }
            _ => "—".to_string(),
        };
        out.push_str(&format!(
            "{:<9}  {:>13.3} s  {:>15.0}  {:>15}  {:>12}\n",
            t.name(),
            r.cpu_s_per_1k,
            r.delivered_per_s,
            idle,
            ratio
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(cpu: f64, idle: Option<f64>) -> BenchReport {
        BenchReport {
            devices: 10,
            rate_hz: 1.0,
            connected: 11,
            connect_s: 0.1,
            window_s: 10.0,
            published: 100,
            delivered: 100,
            delivered_per_s: 10.0,
            cpu_s_per_1k: cpu,
            peak_rss_mib: 1.0,
            bytes_per_captured: 1.0,
            dropped: 0,
            idle_kib_per_device: idle,
            open_fds: None,
            mode: String::new(),
            protocol: "MQTT 3.1.1",
            database: None,
        }
    }

    #[test]
    fn each_transport_gets_a_row_with_its_cpu_relative_to_the_first() {
        let t = transports_table(&[
            (Transport::Tcp, report(0.020, Some(9.5))),
            (Transport::Ws, report(0.030, None)),
        ]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3, "{t}");
        assert!(lines[1].starts_with("tcp") && lines[1].contains("0.020 s"));
        assert!(
            lines[1].contains("9.5") && lines[1].ends_with("×1.00"),
            "{t}"
        );
        assert!(lines[2].starts_with("ws") && lines[2].contains("—"));
        assert!(lines[2].ends_with("×1.50"), "{t}");
    }
}
