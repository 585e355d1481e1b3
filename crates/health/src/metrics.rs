//! Prometheus text exposition (format 0.0.4) for dashboards built on
//! node_exporter's `ipvs` collector (ecosystem.md 3.1), plus health gauges.
//!
//! A userspace balancer does not fill `/proc/net/ip_vs*`, so the daemon renders
//! the same metric names itself from a [`rvs_api::Request::GetServices`]
//! listing: the node-wide totals (summed over services, as
//! `/proc/net/ip_vs_stats` is) and one series per destination with node_exporter's
//! labels `local_address, local_port, remote_address, remote_port, proto,
//! local_mark`. For fwmark services `local_address` is empty, `proto` is `FWM`
//! and `local_mark` is the mark in 8 hex digits, as procfs reports them.

use core::fmt::Write as _;
use core::net::IpAddr;

use rvs_api::{ServiceEntry, ServiceKey};

use crate::check::RealStatus;

/// Metric name suffix, help text and how to read the value.
type Series<T, V> = (&'static str, &'static str, fn(&T) -> V);

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn addr(a: &IpAddr) -> String {
    a.to_string()
}

fn local(key: &ServiceKey) -> (String, u16, &'static str, String) {
    match key {
        ServiceKey::Addr {
            proto,
            addr: a,
            port,
        } => (addr(a), *port, proto.name(), String::new()),
        ServiceKey::Fwmark { mark, .. } => (String::new(), 0, "FWM", format!("{mark:08X}")),
    }
}

/// node_exporter's `node_ipvs_*` metrics for a service listing.
pub fn render_ipvs(services: &[ServiceEntry]) -> String {
    let mut out = String::new();
    let totals: [Series<rvs_api::Stats, u64>; 5] = [
        (
            "connections_total",
            "The total number of connections made.",
            |s| s.conns,
        ),
        (
            "incoming_packets_total",
            "The total number of incoming packets.",
            |s| s.inpkts,
        ),
        (
            "outgoing_packets_total",
            "The total number of outgoing packets.",
            |s| s.outpkts,
        ),
        (
            "incoming_bytes_total",
            "The total amount of incoming data.",
            |s| s.inbytes,
        ),
        (
            "outgoing_bytes_total",
            "The total amount of outgoing data.",
            |s| s.outbytes,
        ),
    ];
    for (name, help, f) in totals {
        let sum: u64 = services
            .iter()
            .map(|s| f(&s.stats))
            .fold(0, u64::wrapping_add);
        let _ = writeln!(out, "# HELP node_ipvs_{name} {help}");
        let _ = writeln!(out, "# TYPE node_ipvs_{name} counter");
        let _ = writeln!(out, "node_ipvs_{name} {sum}");
    }
    let gauges: [Series<rvs_api::DestEntry, i64>; 3] = [
        (
            "backend_connections_active",
            "The current active connections by local and remote address.",
            |d| i64::from(d.active),
        ),
        (
            "backend_connections_inactive",
            "The current inactive connections by local and remote address.",
            |d| i64::from(d.inactive),
        ),
        (
            "backend_weight",
            "The current backend weight by local and remote address.",
            |d| i64::from(d.config.weight),
        ),
    ];
    for (name, help, f) in gauges {
        let _ = writeln!(out, "# HELP node_ipvs_{name} {help}");
        let _ = writeln!(out, "# TYPE node_ipvs_{name} gauge");
        for s in services {
            let (la, lp, proto, mark) = local(&s.config.key);
            for d in &s.dests {
                let _ = writeln!(
                    out,
                    "node_ipvs_{name}{{local_address=\"{}\",local_mark=\"{}\",local_port=\"{lp}\",proto=\"{proto}\",remote_address=\"{}\",remote_port=\"{}\"}} {}",
                    esc(&la),
                    esc(&mark),
                    esc(&addr(&d.config.addr)),
                    d.config.port,
                    f(d)
                );
            }
        }
    }
    out
}

/// Health gauges: `rvs_health_real_server_up` (1 when every checker passes) and
/// `rvs_health_checker_up` per checker, labelled like the ipvs series.
pub fn render_health(status: &[RealStatus]) -> String {
    let mut out = String::new();
    out.push_str(
        "# HELP rvs_health_real_server_up Whether all checkers of the real server pass.\n",
    );
    out.push_str("# TYPE rvs_health_real_server_up gauge\n");
    for r in status {
        let (la, lp, proto, mark) = local(&r.service);
        let _ = writeln!(
            out,
            "rvs_health_real_server_up{{local_address=\"{}\",local_mark=\"{}\",local_port=\"{lp}\",proto=\"{proto}\",remote_address=\"{}\",remote_port=\"{}\"}} {}",
            esc(&la),
            esc(&mark),
            esc(&addr(&r.addr)),
            r.port,
            u8::from(r.up)
        );
    }
    out.push_str("# HELP rvs_health_checker_up Whether one checker of the real server passes.\n");
    out.push_str("# TYPE rvs_health_checker_up gauge\n");
    for r in status {
        let (la, lp, proto, mark) = local(&r.service);
        for (i, (kind, up)) in r.checks.iter().enumerate() {
            let _ = writeln!(
                out,
                "rvs_health_checker_up{{checker=\"{}\",index=\"{i}\",local_address=\"{}\",local_mark=\"{}\",local_port=\"{lp}\",proto=\"{proto}\",remote_address=\"{}\",remote_port=\"{}\"}} {}",
                esc(kind),
                esc(&la),
                esc(&mark),
                esc(&addr(&r.addr)),
                r.port,
                u8::from(*up)
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_api::{DestConfig, DestEntry, Family, Protocol, Rates, ServiceConfig, Stats};

    fn dest(a: &str, weight: i32, active: u32) -> DestEntry {
        let mut c = DestConfig::new(a.parse().expect("addr"), 80);
        c.weight = weight;
        DestEntry {
            config: c,
            active,
            inactive: 2,
            persist: 0,
            stats: Stats::default(),
            rates: Rates::default(),
        }
    }

    #[test]
    fn node_exporter_names_and_labels() {
        let tcp = ServiceKey::Addr {
            proto: Protocol::Tcp,
            addr: "198.18.0.10".parse().expect("addr"),
            port: 80,
        };
        let fwm = ServiceKey::Fwmark {
            af: Family::V4,
            mark: 10,
        };
        let services = vec![
            ServiceEntry {
                config: ServiceConfig::new(tcp),
                stats: Stats {
                    conns: 5,
                    inpkts: 1,
                    outpkts: 2,
                    inbytes: 3,
                    outbytes: 4,
                },
                rates: Rates::default(),
                dests: vec![dest("198.19.0.11", 7, 3)],
            },
            ServiceEntry {
                config: ServiceConfig::new(fwm),
                stats: Stats {
                    conns: 1,
                    ..Stats::default()
                },
                rates: Rates::default(),
                dests: vec![dest("198.19.0.12", 1, 0)],
            },
        ];
        let text = render_ipvs(&services);
        assert!(text.contains("node_ipvs_connections_total 6\n"), "{text}");
        assert!(text.contains("# TYPE node_ipvs_backend_weight gauge\n"));
        assert!(text.contains(
            "node_ipvs_backend_connections_active{local_address=\"198.18.0.10\",local_mark=\"\",local_port=\"80\",proto=\"TCP\",remote_address=\"198.19.0.11\",remote_port=\"80\"} 3\n"
        ), "{text}");
        assert!(text.contains(
            "node_ipvs_backend_weight{local_address=\"\",local_mark=\"0000000A\",local_port=\"0\",proto=\"FWM\",remote_address=\"198.19.0.12\",remote_port=\"80\"} 1\n"
        ), "{text}");
    }
}
